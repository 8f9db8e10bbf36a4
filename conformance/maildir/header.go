package maildir

import (
	"bytes"
	"strings"
)

// Field is one header field of a delivered message.
type Field struct {
	// Name is the field name as written, without the colon and without any
	// white space before the colon (the obsolete syntax of RFC 5322
	// section 4.5.8).
	Name string
	// Value is the unfolded field body: continuation lines are joined with
	// their leading white space kept, and the CRLF or LF line endings are
	// removed. Leading and trailing white space is kept.
	Value string
}

// HeaderFields parses the header section of a message into its fields, in
// order. Lines may end in CRLF or LF. A line that starts with white space
// continues the previous field (RFC 5322 section 2.2.3). A line without a
// colon that continues no field is skipped.
func HeaderFields(data []byte) []Field {
	var fields []Field
	for _, line := range bytes.Split(headerSection(data), []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) > 0 {
				fields[len(fields)-1].Value += string(line)
			}
			continue
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		fields = append(fields, Field{Name: string(bytes.TrimRight(name, " \t")), Value: string(value)})
	}
	return fields
}

// FieldsNamed returns the fields whose name equals name without regard to
// case.
func FieldsNamed(fields []Field, name string) []Field {
	var matches []Field
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			matches = append(matches, f)
		}
	}
	return matches
}

// Body returns the body of a message: everything after the first empty
// line, or nil if there is none.
func Body(data []byte) []byte {
	crlf := bytes.Index(data, []byte("\r\n\r\n"))
	lf := bytes.Index(data, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return data[crlf+4:]
	case lf >= 0:
		return data[lf+2:]
	default:
		return nil
	}
}
