package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNewerSchema is wrapped by the error that Load returns for a file
// written with a newer schema version than this package reads.
var ErrNewerSchema = errors.New("result file has a newer schema version")

// Marshal encodes r as indented JSON with a final newline.
func (r *Result) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode conformance result: %w", err)
	}
	return append(data, '\n'), nil
}

// Write stores r as JSON at path. It writes a temporary file in the same
// folder and renames it, so a reader never sees half a file.
func (r *Result) Write(path string) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write conformance result: %w", err)
	}
	defer os.Remove(tmp.Name())

	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write conformance result %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write conformance result %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write conformance result %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write conformance result %s: %w", path, err)
	}
	return nil
}

// Load reads a result that Write stored at path.
func Load(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read conformance result: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read conformance result %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes a result from JSON. It checks schema_version before
// anything else, so that a file from a newer amtpkit fails with
// ErrNewerSchema rather than with a decoding error on a changed field.
func Parse(data []byte) (*Result, error) {
	var header struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &header); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case header.SchemaVersion == nil:
		return nil, errors.New("schema_version is missing; this is not a conformance result written by amtpkit conform")
	case *header.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("%w: schema_version %d is newer than version %d, the newest this amtpkit reads; use a newer amtpkit to read it",
			ErrNewerSchema, *header.SchemaVersion, SchemaVersion)
	case *header.SchemaVersion < 1:
		return nil, fmt.Errorf("schema_version %d is invalid; versions start at 1", *header.SchemaVersion)
	}

	// Unknown fields are ignored, because a newer amtpkit may add fields
	// without changing the schema version.
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode schema version %d: %w", SchemaVersion, err)
	}
	for _, c := range r.Clauses {
		if !c.Verdict.Valid() {
			return nil, fmt.Errorf("clause %s has the unknown verdict %q", c.ID, c.Verdict)
		}
	}
	return &r, nil
}
