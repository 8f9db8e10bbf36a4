package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	if len(r.Clauses) == 0 {
		return nil, errors.New("the result has no clauses; it is damaged or was not written by amtpkit conform")
	}
	for _, c := range r.Clauses {
		if !c.Verdict.Valid() {
			return nil, fmt.Errorf("clause %s has the unknown verdict %q", c.ID, c.Verdict)
		}
	}

	// Reports take the headline from the clauses and the tables from the
	// summary, so a summary edited apart from its clauses would make them
	// disagree.
	if err := checkSummary(r.Summary, Summarize(r.Clauses)); err != nil {
		return nil, err
	}
	return &r, nil
}

// checkSummary returns an error naming the first difference between a
// stored summary and the one computed from the clauses.
func checkSummary(stored, computed Summary) error {
	mismatch := func(what string, got, want any) error {
		return fmt.Errorf("the summary does not match the clauses: %s is %v in the summary but %v in the clauses; the file was edited or damaged, so run amtpkit conform again", what, got, want)
	}

	if stored.Clauses != computed.Clauses {
		return mismatch("the clause count", stored.Clauses, computed.Clauses)
	}
	if !maps.Equal(stored.Verdicts, computed.Verdicts) {
		return mismatch("the verdict count", stored.Verdicts, computed.Verdicts)
	}
	for level, counts := range computed.ByLevel {
		if !maps.Equal(stored.ByLevel[level], counts) {
			return mismatch("the verdict count of level "+level, stored.ByLevel[level], counts)
		}
	}
	for section, counts := range computed.BySection {
		if !maps.Equal(stored.BySection[section], counts) {
			return mismatch("the verdict count of section "+section, stored.BySection[section], counts)
		}
	}
	if len(stored.ByLevel) != len(computed.ByLevel) || len(stored.BySection) != len(computed.BySection) {
		return mismatch("the number of levels and sections", len(stored.ByLevel)+len(stored.BySection), len(computed.ByLevel)+len(computed.BySection))
	}
	if !slices.Equal(stored.Failed, computed.Failed) {
		return mismatch("the list of failed clauses", stored.Failed, computed.Failed)
	}
	if !slices.Equal(stored.Errors, computed.Errors) {
		return mismatch("the list of clauses with errors", stored.Errors, computed.Errors)
	}
	return nil
}
