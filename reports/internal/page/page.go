// Package page holds what the HTML reports share: the base style sheet
// and the script that opens every <details> element before printing.
// Both are inlined into each report, so that a report is one file that
// fetches nothing.
package page

import (
	_ "embed"
	"html/template"
)

//go:embed base.css
var baseCSS string

//go:embed print.js
var printJS string

// CSS is the base style sheet: typography, tables, verdict badges, wire
// transcripts and the print layout.
var CSS = template.CSS(baseCSS)

// PrintScript opens every <details> element before printing and closes
// the ones it opened afterwards. Browsers without the print events still
// print the summaries, and the @media print rules of CSS show the
// contents where the browser supports ::details-content.
var PrintScript = template.JS(printJS)
