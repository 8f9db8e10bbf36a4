package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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
clauses that fail now but did not fail then (new failures), those that
failed then and pass now (fixes), and other changes of verdict.

'compare' puts several conformance results side by side, one column per
result, named after NAME or the result's target; or two load results.

Exit status:
  0  the reports were written
  1  a result could not be read or a report could not be written
  2  invalid options
  4  --fail-on-regression found new failures against the baseline

options:
`

// CompareUsage is the help text of amtpkit report compare.
const CompareUsage = `usage: amtpkit report compare [--html FILE] [--markdown FILE] [NAME=]RESULT.json...

Puts two or more conformance results side by side: one row per clause and
one column per result, named NAME or after the result's target. Rows whose
verdicts differ come first in Markdown, and the HTML page can hide the
rest. Two load results give a side-by-side HTML page of both runs.
Without --html or --markdown the Markdown goes to stdout.

options:
`

// Run runs amtpkit report with args, the arguments after "report".
func Run(args []string, stdout io.Writer) error {
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
	baseline := flags.String("baseline", "", "compare with the older conformance result in `FILE` and list new failures and fixes")
	failOnRegression := flags.Bool("fail-on-regression", false, fmt.Sprintf("with --baseline, exit with status %d when a clause fails that did not fail in the baseline", RegressionStatus))
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), Usage)
		flags.PrintDefaults()
	}

	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	switch {
	case flags.NArg() == 0:
		return usageErrorf("missing the result file; run 'amtpkit report --help'")
	case flags.NArg() > 1:
		return usageErrorf("unexpected argument %q after the result file %q; use 'amtpkit report compare' for several results", flags.Arg(1), flags.Arg(0))
	case *failOnRegression && *baseline == "":
		return usageErrorf("--fail-on-regression needs --baseline OLD.json")
	}
	path := flags.Arg(0)

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
	return runBaseline(*baseline, r, out, *failOnRegression)
}

// runBaseline checks r against the baseline in oldPath, prints the
// changes to stdout and writes the reports of r. With --markdown the
// Markdown holds the baseline comparison before the summary.
func runBaseline(oldPath string, r *result.Result, out Outputs, failOnRegression bool) error {
	old, err := loadConformance(oldPath)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	diff := conform.CompareBaseline(old, r)

	if out.Markdown != "-" {
		if err := conform.WriteBaselineText(out.Stdout, diff); err != nil {
			return err
		}
	}
	markdown := out.Markdown
	out.Markdown = ""
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
		return fmt.Errorf("%w: %d clauses fail that did not fail in %s", ErrRegression, len(diff.Regressions), oldPath)
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
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	if flags.NArg() < 2 {
		return usageErrorf("compare needs at least two result files, got %d", flags.NArg())
	}

	kind, _, err := readResult(argPath(flags.Arg(0)))
	if err != nil {
		return err
	}
	if kind == KindLoad {
		return compareLoad(flags.Args(), *htmlPath, *markdownPath, stdout)
	}

	var named []conform.Named
	for _, arg := range flags.Args() {
		name, path := splitNamed(arg)
		r, err := loadConformance(path)
		if err != nil {
			return err
		}
		named = append(named, conform.Named{Name: conform.ColumnName(name, path, r), Result: r})
	}
	matrix := conform.Compare(named)

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

func argPath(arg string) string {
	_, path := splitNamed(arg)
	return path
}
