package cli

import (
	"errors"
	"io"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
)

// Outputs are the report files of one conformance result. An empty path
// skips that report, and "-" writes it to Stdout.
type Outputs struct {
	JUnit    string
	HTML     string
	Markdown string
	// WarnAsFailure files warn verdicts as JUnit failures.
	WarnAsFailure bool
	// InterpretationsURL is the HTML report's link to the interpretations
	// page; empty selects conform.InterpretationsURL.
	InterpretationsURL string
	// Baseline, when set, is the comparison with the baseline in the file
	// BaselinePath, which the HTML report shows after its headline.
	Baseline     *conform.Diff
	BaselinePath string
	Stdout       io.Writer
}

// Any reports whether o names at least one report.
func (o Outputs) Any() bool {
	return o.JUnit != "" || o.HTML != "" || o.Markdown != ""
}

// WriteConformance writes each report that o names. It writes every
// report it can and returns the errors of all that failed.
func WriteConformance(r *result.Result, o Outputs) error {
	var errs []error
	if o.JUnit != "" {
		errs = append(errs, output{o.JUnit, o.Stdout}.write(func(w io.Writer) error {
			return conform.WriteJUnit(w, r, conform.JUnitOptions{WarnAsFailure: o.WarnAsFailure})
		}))
	}
	if o.HTML != "" {
		errs = append(errs, output{o.HTML, o.Stdout}.write(func(w io.Writer) error {
			return conform.WriteHTML(w, r, conform.HTMLOptions{
				InterpretationsURL: o.InterpretationsURL, Baseline: o.Baseline, BaselineName: o.BaselinePath,
			})
		}))
	}
	if o.Markdown != "" {
		errs = append(errs, output{o.Markdown, o.Stdout}.write(func(w io.Writer) error {
			return conform.WriteMarkdown(w, r)
		}))
	}
	return errors.Join(errs...)
}
