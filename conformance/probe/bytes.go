package probe

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bytes is raw wire data that encodes to JSON as a readable string.
//
// Valid UTF-8 text, CR, LF and TAB stay as they are, so JSON shows them as
// text and \r, \n, \t. A backslash becomes \\. Every other control
// character, invisible format character (such as a bidirectional override)
// and byte that is not valid UTF-8 becomes \xNN, one escape per byte.
// Decoding reverses the encoding exactly. Plain encoding/json would replace
// invalid UTF-8 with U+FFFD and lose the original bytes.
type Bytes []byte

// String returns the escaped form that MarshalJSON puts inside the quotes.
func (b Bytes) String() string {
	return escapeBytes(b, false)
}

// MarshalJSON encodes b as a JSON string in the escaped form.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(escapeBytes(b, false))
}

// UnmarshalJSON decodes a JSON string in the escaped form.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return err
	}
	decoded, err := unescapeBytes(text)
	if err != nil {
		return err
	}
	*b = decoded
	return nil
}

// escapeForRender returns data escaped as Bytes does, but with CR, LF and
// TAB also shown as \r, \n and \t, so that the result is one visible line.
func escapeForRender(data []byte) string {
	return escapeBytes(data, true)
}

var lineBreakEscapes = map[rune]string{'\r': `\r`, '\n': `\n`, '\t': `\t`}

func escapeBytes(data []byte, escapeLineBreaks bool) string {
	var out strings.Builder
	out.Grow(len(data))
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&out, `\x%02x`, data[0])
		case r == '\\':
			out.WriteString(`\\`)
		case r == '\r' || r == '\n' || r == '\t':
			if escapeLineBreaks {
				out.WriteString(lineBreakEscapes[r])
			} else {
				out.WriteRune(r)
			}
		case r == ' ' || unicode.IsGraphic(r):
			out.Write(data[:size])
		default:
			for _, c := range data[:size] {
				fmt.Fprintf(&out, `\x%02x`, c)
			}
		}
		data = data[size:]
	}
	return out.String()
}

// unescapeBytes reverses escapeBytes with escapeLineBreaks false.
func unescapeBytes(text string) (Bytes, error) {
	out := make(Bytes, 0, len(text))
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' {
			out = append(out, text[i])
			continue
		}
		rest := text[i+1:]
		switch {
		case strings.HasPrefix(rest, `\`):
			out = append(out, '\\')
			i++
		case strings.HasPrefix(rest, "x") && len(rest) >= 3:
			decoded, err := hex.DecodeString(rest[1:3])
			if err != nil {
				return nil, fmt.Errorf("invalid escape %q at offset %d: expected \\xNN with two hex digits", text[i:i+4], i)
			}
			out = append(out, decoded...)
			i += 3
		default:
			return nil, fmt.Errorf("invalid escape %q at offset %d: expected \\\\ or \\xNN", text[i:min(i+4, len(text))], i)
		}
	}
	return out, nil
}

// byteCount returns "1 byte" or "n bytes", for notes and error details.
func byteCount(n int) string {
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}
