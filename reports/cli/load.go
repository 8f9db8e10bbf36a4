package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
	"github.com/amtp-toolkit/amtp/reports/load"
)

// writeLoad renders the load result in data: HTML with --html and
// Markdown with --markdown, or Markdown on stdout without either.
func writeLoad(data []byte, path string, out Outputs) error {
	r, err := result.Parse(data)
	if err != nil {
		return fmt.Errorf("read load result %s: %w", path, err)
	}
	if out.HTML == "" && out.Markdown == "" {
		out.Markdown = "-"
	}

	var errs []error
	if out.HTML != "" {
		errs = append(errs, output{out.HTML, out.Stdout}.write(func(w io.Writer) error { return load.WriteHTML(w, r) }))
	}
	if out.Markdown != "" {
		errs = append(errs, output{out.Markdown, out.Stdout}.write(func(w io.Writer) error { return load.WriteMarkdown(w, r) }))
	}
	return errors.Join(errs...)
}

// compareLoad renders two load results side by side as HTML.
func compareLoad(inputs []compareInput, htmlPath, markdownPath string, stdout io.Writer) error {
	if len(inputs) != 2 {
		return usageErrorf("compare takes exactly two load results, got %d", len(inputs))
	}
	if markdownPath != "" {
		return usageErrorf("--markdown compares conformance results; use --html for load results")
	}
	if htmlPath == "" {
		return usageErrorf("comparing load results needs --html FILE")
	}

	var names []string
	var results []*result.Result
	for _, in := range inputs {
		r, err := result.Parse(in.data)
		if err != nil {
			return fmt.Errorf("read load result %s: %w", in.path, err)
		}
		name := in.name
		if name == "" {
			name = in.path
		}
		names = append(names, name)
		results = append(results, r)
	}
	names = conform.UniqueNames(names)
	return output{htmlPath, stdout}.write(func(w io.Writer) error {
		return load.WriteCompareHTML(w, load.Named{Name: names[0], Result: results[0]}, load.Named{Name: names[1], Result: results[1]})
	})
}
