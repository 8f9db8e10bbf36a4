// Package message inspects and amends the header section of an Internet
// message (RFC 5322) as AMTP delivery needs: finding a pre-existing MPC
// header field and inserting trace and MPC fields.
package message

import (
	"bytes"
	"strings"
)

// HeaderSection returns the header section of msg: everything before the
// first empty line, or all of msg when it has none.
func HeaderSection(msg []byte) []byte {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// HasField reports whether the header section of msg contains a field
// named name, compared without regard to case. It also matches the
// obsolete form with white space before the colon (RFC 5322 section
// 4.5), so "MPC :" cannot slip past a check for "MPC".
func HasField(msg []byte, name string) bool {
	for _, line := range bytes.Split(HeaderSection(msg), []byte("\r\n")) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue // empty or a continuation line of a folded field
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		fieldName := strings.TrimRight(string(line[:colon]), " \t")
		if strings.EqualFold(fieldName, name) {
			return true
		}
	}
	return false
}

// HasMPCField reports whether msg already carries an MPC header field,
// which draft-weinman-amtp-03 section 4.4.4 forbids a server to relay or
// deliver.
func HasMPCField(msg []byte) bool {
	return HasField(msg, "MPC")
}

// Prepend returns msg with the given header fields in front of it, each
// written as "Name: value" CRLF in the order given.
func Prepend(msg []byte, fields ...Field) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	b.Write(msg)
	return b.Bytes()
}

// Field is one header field.
type Field struct {
	Name  string
	Value string
}
