package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/amtp-toolkit/amtp/loadgen/result"
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
func compareLoad(args []string, htmlPath, markdownPath string, stdout io.Writer) error {
	if len(args) != 2 {
		return usageErrorf("compare takes exactly two load results, got %d", len(args))
	}
	if markdownPath != "" {
		return usageErrorf("--markdown compares conformance results; use --html for load results")
	}
	if htmlPath == "" {
		return usageErrorf("comparing load results needs --html FILE")
	}

	var named []load.Named
	for _, arg := range args {
		name, path := splitNamed(arg)
		kind, data, err := readResult(path)
		if err != nil {
			return err
		}
		if kind != KindLoad {
			return usageErrorf("%s is a %s result; compare takes results of one kind", path, kind)
		}
		r, err := result.Parse(data)
		if err != nil {
			return fmt.Errorf("read load result %s: %w", path, err)
		}
		if name == "" {
			name = path
		}
		named = append(named, load.Named{Name: name, Result: r})
	}
	return output{htmlPath, stdout}.write(func(w io.Writer) error {
		return load.WriteCompareHTML(w, named[0], named[1])
	})
}
