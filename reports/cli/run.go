package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
)

// Usage is the help text of amtpkit report, printed before the options.
const Usage = `usage: amtpkit report [--html FILE] [--junit FILE] [--markdown FILE]
                      [--warnings-as-failures] [--interpretations URL] RESULT.json
       amtpkit report --baseline OLD.json [--fail-on-regression]
                      [--html FILE] [--junit FILE] [--markdown FILE] NEW.json
       amtpkit report compare [--html FILE] [--markdown FILE] [NAME=]RESULT.json...

Renders a saved result of amtpkit conform or amtpkit load again. A
conformance result becomes JUnit XML (--junit), one self-contained HTML
page (--html) or a Markdown summary (--markdown); a load result becomes an
HTML page with plots (--html) or a Markdown summary. FILE "-" is stdout.
Without any of these options the Markdown summary goes to stdout.

--baseline compares a conformance result with an older one and lists the
regressions, the fixes (failed then; pass, warn or info now) and other
changes of verdict. A regression is a clause that fails now and did not
fail then (or was absent), or that passed then and now gets error: an
error means the suite can no longer confirm the pass. When the two runs
differ in target, draft, suite version or run options (such as --strict
in one only), a warning on stderr and in the Markdown and HTML names
each difference. The Markdown lists the changes before the summary, and
the HTML page after its headline.

'compare' puts several conformance results side by side, one column per
result, or two load results. A column is named NAME when the argument is
NAME=RESULT.json, else after the result's target (its path when it has
none). Results without NAME that share a target are named after their
file's base name instead, and a name that still repeats gets a suffix
such as " (2)".

Options may stand before, between or after the result files; "--" ends
the options, so that a file named like an option can follow.

Exit status:
  0  the reports were written
  1  a result could not be read or a report could not be written
  2  invalid options
  4  --fail-on-regression found regressions against the baseline

options:
`

// CompareUsage is the help text of amtpkit report compare.
const CompareUsage = `usage: amtpkit report compare [--html FILE] [--markdown FILE] [NAME=]RESULT.json...

Puts two or more conformance results side by side: one row per clause and
one column per result, named NAME or after the result's target (its path
when it has none). Results without NAME that share a target are named
after their file's base name instead, and a name that still repeats gets
a suffix such as " (2)". Rows whose
verdicts differ come first, in Markdown and HTML, and the HTML page can
hide the rest. Two load results give a side-by-side HTML page of both
runs. All files must be results of one kind. Options may stand anywhere
among the files, and "--" ends them. Without --html or --markdown the
Markdown goes to stdout.

options:
`

// Run runs amtpkit report with args, the arguments after "report". The
// reports that go to "-" and the baseline comparison go to stdout, and
// warnings go to stderr.
func Run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(args[1:], stdout)
	}

	flags := flag.NewFlagSet("amtpkit report", flag.ContinueOnError)
	out := Outputs{Stdout: stdout}
	flags.StringVar(&out.HTML, "html", "", "write the HTML report to `FILE`")
	flags.StringVar(&out.JUnit, "junit", "", "write JUnit XML to `FILE` (conformance results only)")
	flags.StringVar(&out.Markdown, "markdown", "", "write the Markdown summary to `FILE`, such as $GITHUB_STEP_SUMMARY")
	flags.BoolVar(&out.WarnAsFailure, "warnings-as-failures", false, "file warn verdicts (a SHOULD not met) as JUnit failures")
	flags.StringVar(&out.InterpretationsURL, "interpretations", conform.InterpretationsURL, "`URL` or relative path of the interpretations page that the HTML report links to")
	baseline := flags.String("baseline", "", "compare with the older conformance result in `FILE` and list regressions and fixes")
	failOnRegression := flags.Bool("fail-on-regression", false, fmt.Sprintf("with --baseline, exit with status %d on a regression: a clause that fails now and did not fail in the baseline, or that passed there and now gets error", RegressionStatus))
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), Usage)
		flags.PrintDefaults()
	}

	files, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	switch {
	case len(files) == 0:
		return usageErrorf("missing the result file; run 'amtpkit report --help'")
	case len(files) > 1:
		return usageErrorf("unexpected argument %q after the result file %q; use 'amtpkit report compare' for several results", files[1], files[0])
	case *failOnRegression && *baseline == "":
		return usageErrorf("--fail-on-regression needs --baseline OLD.json")
	}
	path := files[0]

	kind, data, err := readResult(path)
	if err != nil {
		return err
	}
	if kind == KindLoad {
		if *baseline != "" || out.JUnit != "" {
			return usageErrorf("%s is a load result; --baseline and --junit take conformance results", path)
		}
		return writeLoad(data, path, out)
	}

	r, err := result.Parse(data)
	if err != nil {
		return fmt.Errorf("read conformance result %s: %w", path, err)
	}
	if *baseline == "" {
		if !out.Any() {
			out.Markdown = "-"
		}
		return WriteConformance(r, out)
	}
	return runBaseline(*baseline, r, out, *failOnRegression, stderr)
}

// runBaseline checks r against the baseline in oldPath, prints the
// changes to stdout and writes the reports of r. With --markdown the
// Markdown holds the baseline comparison before the summary, and with
// --html the page shows it after the headline. Differences
// in what ran, such as --strict in one run only, go to stderr as
// warnings.
func runBaseline(oldPath string, r *result.Result, out Outputs, failOnRegression bool, stderr io.Writer) error {
	old, err := loadConformance(oldPath)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	diff := conform.CompareBaseline(old, r)

	for _, change := range diff.Environment {
		fmt.Fprintf(stderr, "warning: the baseline %s and the new result differ in %s\n", oldPath, change)
	}

	if out.Markdown != "-" {
		if err := conform.WriteBaselineText(out.Stdout, diff); err != nil {
			return err
		}
	}
	markdown := out.Markdown
	out.Markdown = ""
	out.Baseline, out.BaselinePath = &diff, oldPath
	if err := WriteConformance(r, out); err != nil {
		return err
	}
	if markdown != "" {
		err := output{markdown, out.Stdout}.write(func(w io.Writer) error {
			if err := conform.WriteBaselineMarkdown(w, diff); err != nil {
				return err
			}
			return conform.WriteMarkdown(w, r)
		})
		if err != nil {
			return err
		}
	}

	if failOnRegression && len(diff.Regressions) > 0 {
		return fmt.Errorf("%w: %d against %s; a regression fails now and did not fail there, or passed there and now gets error", ErrRegression, len(diff.Regressions), oldPath)
	}
	return nil
}

// readResult reads a result file and detects its kind.
func readResult(path string) (Kind, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read result: %w", err)
	}
	kind, err := DetectKind(data)
	if err != nil {
		return "", nil, fmt.Errorf("read result %s: %w", path, err)
	}
	return kind, data, nil
}

// loadConformance reads a conformance result and rejects a load result
// with a clear error.
func loadConformance(path string) (*result.Result, error) {
	kind, data, err := readResult(path)
	if err != nil {
		return nil, err
	}
	if kind != KindConformance {
		return nil, fmt.Errorf("%s is a %s result, not a conformance result", path, kind)
	}
	r, err := result.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read conformance result %s: %w", path, err)
	}
	return r, nil
}

// runCompare runs amtpkit report compare.
func runCompare(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("amtpkit report compare", flag.ContinueOnError)
	htmlPath := flags.String("html", "", "write the HTML comparison to `FILE`")
	markdownPath := flags.String("markdown", "", "write the Markdown comparison to `FILE` (conformance results only)")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), CompareUsage)
		flags.PrintDefaults()
	}
	files, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(files) < 2 {
		return usageErrorf("compare needs at least two result files, got %d", len(files))
	}

	inputs, err := readCompareInputs(files)
	if err != nil {
		return err
	}
	if inputs[0].kind == KindLoad {
		return compareLoad(inputs, *htmlPath, *markdownPath, stdout)
	}

	var columns []conform.Column
	for _, in := range inputs {
		r, err := result.Parse(in.data)
		if err != nil {
			return fmt.Errorf("read conformance result %s: %w", in.path, err)
		}
		columns = append(columns, conform.Column{Given: in.name, Path: in.path, Result: r})
	}
	matrix := conform.Compare(conform.NameColumns(columns))

	if *htmlPath == "" && *markdownPath == "" {
		*markdownPath = "-"
	}
	var errs []error
	if *htmlPath != "" {
		errs = append(errs, output{*htmlPath, stdout}.write(func(w io.Writer) error { return conform.WriteCompareHTML(w, matrix) }))
	}
	if *markdownPath != "" {
		errs = append(errs, output{*markdownPath, stdout}.write(func(w io.Writer) error { return conform.WriteCompareMarkdown(w, matrix) }))
	}
	return errors.Join(errs...)
}

// compareInput is one result file of amtpkit report compare.
type compareInput struct {
	name, path string
	kind       Kind
	data       []byte
}

// readCompareInputs reads every "[NAME=]FILE" argument and checks that
// all results are of one kind before any is rendered. The error of a
// mix names the kind of each file.
func readCompareInputs(args []string) ([]compareInput, error) {
	var inputs []compareInput
	for _, arg := range args {
		name, path := splitNamed(arg)
		kind, data, err := readResult(path)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, compareInput{name: name, path: path, kind: kind, data: data})
	}

	for _, in := range inputs[1:] {
		if in.kind == inputs[0].kind {
			continue
		}
		var kinds []string
		for _, each := range inputs {
			kinds = append(kinds, fmt.Sprintf("%s is a %s result", each.path, each.kind))
		}
		return nil, usageErrorf("compare takes results of one kind, but %s; compare the conformance results and the load results separately", strings.Join(kinds, ", "))
	}
	return inputs, nil
}
