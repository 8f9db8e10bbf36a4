package result

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// ErrNewerSchema is wrapped by the error that Parse returns for a file of
// a newer schema version than this package reads.
var ErrNewerSchema = errors.New("load result has a newer schema version")

// bucketList matches an indented "buckets" array of a histogram, which
// holds only numbers.
var bucketList = regexp.MustCompile(`"buckets": \[[0-9\s,\[\]]*\]`)

// Marshal encodes r as indented JSON with a final newline, except that
// each histogram's buckets stay on one line: indented, they would make
// the file about four times as large. It sets SchemaVersion.
func (r *Result) Marshal() ([]byte, error) {
	r.SchemaVersion = SchemaVersion

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode load result: %w", err)
	}

	compacted := bucketList.ReplaceAllFunc(buf.Bytes(), func(list []byte) []byte {
		numbers := list[len(`"buckets": `):]
		return append([]byte(`"buckets": `), bytes.Join(bytes.Fields(numbers), nil)...)
	})
	return compacted, nil
}

// Write stores r as JSON at path, through a temporary file in the same
// folder that is renamed into place, so a reader never sees half a file.
func (r *Result) Write(path string) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write load result %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)

	_, writeErr := tmp.Write(data)
	closeErr := tmp.Close()
	if err := errors.Join(writeErr, closeErr, os.Chmod(tmpName, 0o644)); err != nil {
		return fmt.Errorf("write load result %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write load result %s: %w", path, err)
	}
	return nil
}

// Load reads a result stored by Write.
func Load(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read load result: %w", err)
	}

	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read load result %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes a result from JSON. It reads schema_version first, so a
// file of a newer amtpkit fails with ErrNewerSchema and not with an error
// about a changed field. Unknown fields are ignored: a newer amtpkit may
// add fields without a new schema version.
func Parse(data []byte) (*Result, error) {
	var header struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &header); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}

	switch v := header.SchemaVersion; {
	case v == nil:
		return nil, errors.New("schema_version is missing; this is not a load result written by amtpkit load")
	case *v > SchemaVersion:
		return nil, fmt.Errorf("%w: schema_version %d is newer than %d, the newest this amtpkit reads; read it with a newer amtpkit",
			ErrNewerSchema, *v, SchemaVersion)
	case *v < 1:
		return nil, fmt.Errorf("schema_version %d is invalid; versions start at 1", *v)
	}

	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode load result of schema version %d: %w", SchemaVersion, err)
	}
	return &r, nil
}
