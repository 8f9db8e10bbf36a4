package conform

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// Line is one line of a wire transcript, ready to print.
type Line struct {
	// Offset is the time since the connection's dial started.
	Offset time.Duration
	// Dir is "C" for bytes the suite sent, "S" for bytes the server sent
	// and "*" for a note about the connection.
	Dir  string
	Text string
}

// Class returns the CSS class of the line's direction.
func (l Line) Class() string {
	switch l.Dir {
	case string(probe.DirClient):
		return "client"
	case string(probe.DirServer):
		return "server"
	default:
		return "meta"
	}
}

// Stamp returns Offset in milliseconds, as "+12.345ms".
func (l Line) Stamp() string {
	return fmt.Sprintf("+%.3fms", float64(l.Offset)/float64(time.Millisecond))
}

// String returns the line as "+12.345ms C: EHLO client.example.test".
func (l Line) String() string {
	if l.Dir == string(probe.DirMeta) {
		return l.Stamp() + " * " + l.Text
	}
	return l.Stamp() + " " + l.Dir + ": " + l.Text
}

// Lines returns the events of one connection as lines with their offsets.
// Data with several lines becomes several lines with the same offset.
// Data is escaped as escapeWire describes, and a server line cut
// short by a timeout or close ends with "[no line ending]". When the
// evidence has no record, Lines falls back to its rendered text without
// offsets.
func Lines(e result.Evidence) []Line {
	if e.Record == nil {
		var lines []Line
		for _, text := range strings.Split(strings.TrimRight(e.Rendered, "\n"), "\n") {
			if text != "" {
				lines = append(lines, renderedLine(text))
			}
		}
		return lines
	}

	var lines []Line
	for _, event := range e.Record.Events() {
		if event.Dir == probe.DirMeta {
			lines = append(lines, Line{Offset: event.Offset, Dir: string(event.Dir), Text: escapeWire(event.Data)})
			continue
		}
		for _, part := range splitLines(event.Data) {
			lines = append(lines, Line{Offset: event.Offset, Dir: string(event.Dir), Text: part})
		}
		if event.Truncated {
			lines = append(lines, Line{Offset: event.Offset, Dir: string(probe.DirMeta),
				Text: fmt.Sprintf("event cut to %d of %d bytes", len(event.Data), event.Size)})
		}
	}
	if events, size := e.Record.Dropped(); events > 0 {
		lines = append(lines, Line{Dir: string(probe.DirMeta),
			Text: fmt.Sprintf("transcript limit reached: %d more events (%d bytes) not recorded", events, size)})
	}
	return lines
}

// renderedLine parses one line of probe.Transcript.Render output.
func renderedLine(text string) Line {
	for _, dir := range []probe.Direction{probe.DirClient, probe.DirServer} {
		if rest, ok := strings.CutPrefix(text, string(dir)+": "); ok {
			return Line{Dir: string(dir), Text: rest}
		}
	}
	return Line{Dir: string(probe.DirMeta), Text: strings.TrimPrefix(text, "* ")}
}

// splitLines splits data at CRLF, and at a bare LF, which it shows as \n.
// A last part without a line ending gets the suffix "[no line ending]".
func splitLines(data []byte) []string {
	var parts []string
	for len(data) > 0 {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			parts = append(parts, escapeWire(data)+" [no line ending]")
			break
		}
		line := data[:end]
		suffix := ""
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		} else {
			suffix = `\n`
		}
		parts = append(parts, escapeWire(line)+suffix)
		data = data[end+1:]
	}
	return parts
}

// lineBreakEscaper shows the line breaks and tabs that probe.Bytes keeps.
var lineBreakEscaper = strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`)

// escapeWire returns data as one printable line, escaped as probe.Bytes
// escapes it (a backslash as \\, other control characters, invisible
// format characters and invalid UTF-8 as \xNN), with CR, LF and TAB also
// shown as \r, \n and \t.
func escapeWire(data []byte) string {
	return lineBreakEscaper.Replace(probe.Bytes(data).String())
}
