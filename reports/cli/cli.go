// Package cli is the command line of amtpkit report: it reads saved
// conformance and load results and writes JUnit XML, HTML and Markdown,
// comparisons and baseline checks.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// UsageError is an error in the command-line arguments.
type UsageError struct {
	Message string
}

func (e *UsageError) Error() string { return "usage error: " + e.Message }

// ErrRegression is wrapped by the error of a baseline check with
// --fail-on-regression that found regressions: clauses that fail now
// and did not fail in the baseline, or that passed and now get error.
var ErrRegression = errors.New("regressions against the baseline")

// RegressionStatus is the exit status of amtpkit report when
// --fail-on-regression finds regressions. It differs from 1 (a failure
// to read or write) and 2 (invalid options), so a CI job can tell them
// apart.
const RegressionStatus = 4

// Kind is the kind of a saved result.
type Kind string

// Kinds of results.
const (
	KindConformance Kind = "conformance"
	KindLoad        Kind = "load"
)

// DetectKind returns the kind of the result in data: a conformance result
// of amtpkit conform has a "clauses" list, and a load result of amtpkit
// load has "run" and "phases".
func DetectKind(data []byte) (Kind, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	_, hasClauses := top["clauses"]
	_, hasRun := top["run"]
	_, hasPhases := top["phases"]
	switch {
	case hasClauses:
		return KindConformance, nil
	case hasRun && hasPhases:
		return KindLoad, nil
	default:
		return "", errors.New(`not a result of amtpkit conform (no "clauses") or amtpkit load (no "run" and "phases")`)
	}
}

func usageErrorf(format string, args ...any) error {
	return &UsageError{Message: fmt.Sprintf(format, args...)}
}

// output is one file that a report goes to; "-" is stdout.
type output struct {
	path   string
	stdout io.Writer
}

// write creates the file and calls render with it. It writes through a
// temporary file that it renames, so that a reader never sees half a
// report.
func (o output) write(render func(io.Writer) error) error {
	if o.path == "-" {
		return render(o.stdout)
	}

	dir := filepath.Dir(o.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(o.path)+".*")
	if err != nil {
		return o.fileError(err, fmt.Sprintf("; check that the folder %s exists and is writable", dir))
	}
	defer os.Remove(tmp.Name())

	renderErr := render(tmp)
	closeErr := tmp.Close()
	if err := errors.Join(renderErr, closeErr); err != nil {
		return o.fileError(err, "")
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return o.fileError(err, "")
	}
	if err := os.Rename(tmp.Name(), o.path); err != nil {
		return o.fileError(err, "")
	}
	return nil
}

// fileError wraps an error of writing the report, followed by hint. The
// user never named the temporary file, so an error about a file
// operation keeps only its cause and names o.path instead.
func (o output) fileError(err error, hint string) error {
	var pathErr *os.PathError
	var linkErr *os.LinkError
	switch {
	case errors.As(err, &pathErr):
		err = pathErr.Err
	case errors.As(err, &linkErr):
		err = linkErr.Err
	}
	return fmt.Errorf("write report %s: %w%s", o.path, err, hint)
}

// splitNamed splits a "name=path" argument. An argument that names an
// existing file is a path, even when it contains "=".
func splitNamed(arg string) (name, path string) {
	if _, err := os.Stat(arg); err == nil {
		return "", arg
	}
	if name, path, ok := strings.Cut(arg, "="); ok && name != "" {
		return name, path
	}
	return "", arg
}
