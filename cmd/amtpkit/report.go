package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/cli"
)

// runReport runs "amtpkit report"; reports/cli holds the logic.
func runReport(_ context.Context, args []string, stdout io.Writer) error {
	err := cli.Run(args, stdout, os.Stderr)
	var usage *cli.UsageError
	switch {
	case errors.As(err, &usage):
		return usageErrorf("%s", usage.Message)
	case errors.Is(err, cli.ErrRegression):
		return &exitError{status: cli.RegressionStatus, err: err}
	default:
		return err
	}
}

// addReportFlags adds the report options of amtpkit conform to flags.
func addReportFlags(flags *flag.FlagSet) *cli.Outputs {
	var out cli.Outputs
	flags.StringVar(&out.JUnit, "junit", "", "also write the result as JUnit XML to `FILE`")
	flags.StringVar(&out.HTML, "html", "", "also write the result as one self-contained HTML page to `FILE`")
	flags.StringVar(&out.Markdown, "markdown", "", "also write a Markdown summary to `FILE`, such as $GITHUB_STEP_SUMMARY")
	return &out
}

// writeReports writes the reports that out names and prints where they
// went, or why one could not be written.
func writeReports(stdout io.Writer, r *result.Result, out *cli.Outputs) error {
	out.Stdout = stdout
	err := cli.WriteConformance(r, *out)
	if err != nil {
		fmt.Fprintf(stdout, "reports not written: %v\n", err)
		return err
	}
	for _, report := range []struct{ kind, path string }{
		{"JUnit XML", out.JUnit}, {"HTML report", out.HTML}, {"Markdown summary", out.Markdown},
	} {
		if report.path != "" && report.path != "-" {
			fmt.Fprintf(stdout, "%s: %s\n", report.kind, report.path)
		}
	}
	return nil
}
