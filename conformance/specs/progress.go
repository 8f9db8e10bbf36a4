package specs

import (
	"fmt"
	"io"
	"sync"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// ProgressLegend explains the letters of the compact progress report.
const ProgressLegend = ". pass, F fail, W warn, i info, s skip, E error"

// progressLetters are the letters of the compact progress report, one per
// clause as its check ends.
var progressLetters = map[result.Verdict]string{
	result.Pass:  ".",
	result.Fail:  "F",
	result.Warn:  "W",
	result.Info:  "i",
	result.Skip:  "s",
	result.Error: "E",
}

// progress is the state of the compact progress report, which has one
// line per section, headed by the section, with a letter per clause. The
// sections of client-role clauses start with "client ".
var progress struct {
	sync.Mutex
	w       io.Writer
	header  string
	section string
}

// startProgress sets the writer of the compact progress report for a run
// and the line it starts with; nil turns the report off.
func startProgress(w io.Writer, header string) {
	progress.Lock()
	defer progress.Unlock()
	progress.w = w
	progress.header = header
	progress.section = ""
}

// reportProgress writes the letter of the verdict of clause id, after the
// heading of its section when the section changed.
func reportProgress(id string, v result.Verdict) {
	progress.Lock()
	defer progress.Unlock()
	if progress.w == nil {
		return
	}

	section := id
	if c, ok := catalogue.ByID(id); ok {
		section = SectionLabelValue(c.Source, c.Section)
		if c.Role == catalogue.RoleClient {
			// The client-role checks run last and repeat section numbers.
			section = "client " + section
		}
	}
	if progress.header != "" {
		fmt.Fprintln(progress.w, progress.header)
		progress.header = ""
	}
	if section != progress.section {
		if progress.section != "" {
			fmt.Fprintln(progress.w)
		}
		fmt.Fprintf(progress.w, "%-20s ", section)
		progress.section = section
	}

	letter, ok := progressLetters[v]
	if !ok {
		letter = "?"
	}
	fmt.Fprint(progress.w, letter)
}
