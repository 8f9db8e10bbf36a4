package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
)

// Direction is the source of a transcript event.
type Direction string

// Event directions. They match the prefixes of the transaction listings in
// the AMTP draft and RFC 5321.
const (
	// DirClient marks bytes that the probe sent.
	DirClient Direction = "C"
	// DirServer marks one line, or part of a line, that the server sent.
	DirServer Direction = "S"
	// DirMeta marks a note about the connection, such as the dial, the TLS
	// handshake, an error or the close.
	DirMeta Direction = "*"
)

// Defaults for the transcript limits in Options.
const (
	DefaultMaxEventSize      = 64 << 10
	DefaultMaxTranscriptSize = 1 << 20
)

// metaReserve is the number of bytes that meta events may use beyond the
// transcript limit, so that the notes on a timeout or close still appear
// after a hostile server has filled the transcript.
const metaReserve = 64 << 10

// eventOverhead is the memory cost of one Event without its data. Every
// event is charged this much against the transcript limit, so that a flood
// of empty lines cannot grow the event list without bound.
var eventOverhead = int(reflect.TypeFor[Event]().Size())

// Event is one entry of a transcript.
type Event struct {
	// Offset is the time since the dial started, from the monotonic clock.
	Offset time.Duration `json:"offset_ns"`
	// Time is the wall-clock time of the event.
	Time time.Time `json:"time"`
	Dir  Direction `json:"dir"`
	// Data contains the bytes sent or received, or the text of a meta
	// event, cut to the transcript's maximum event size.
	Data Bytes `json:"data"`
	// Size is the length of the data before it was cut.
	Size      int  `json:"size"`
	Truncated bool `json:"truncated,omitempty"`
	// Partial marks server data that does not end with a line ending: a
	// timeout, a close or the line length limit interrupted the line.
	Partial bool `json:"partial,omitempty"`
}

// Transcript is the ordered record of one connection. It is safe for
// concurrent use.
//
// Stored data is bounded: one event keeps at most maxEventSize bytes, and
// all events together, each charged its data plus eventOverhead, at most
// maxSize bytes. Meta events may use metaReserve bytes more. Events beyond
// the limit are counted in DroppedEvents and DroppedBytes, not stored.
type Transcript struct {
	mu            sync.Mutex
	start         time.Time
	maxEventSize  int
	maxSize       int
	size          int
	events        []Event
	droppedEvents int
	droppedBytes  int64
}

// NewTranscript returns an empty transcript whose offsets count from now.
// A limit of zero or less selects its default.
func NewTranscript(maxEventSize, maxSize int) *Transcript {
	if maxEventSize <= 0 {
		maxEventSize = DefaultMaxEventSize
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxTranscriptSize
	}
	return &Transcript{start: time.Now(), maxEventSize: maxEventSize, maxSize: maxSize}
}

// Start returns the time from which event offsets count.
func (t *Transcript) Start() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.start
}

// Events returns a copy of the stored events.
func (t *Transcript) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	events := make([]Event, len(t.events))
	for i, event := range t.events {
		event.Data = append(Bytes(nil), event.Data...)
		events[i] = event
	}
	return events
}

// StoredSize returns the bytes charged against the limit so far: the data
// of every stored event plus eventOverhead per event.
func (t *Transcript) StoredSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size
}

// Dropped returns the number of events that did not fit the transcript
// limit and the total size of their data.
func (t *Transcript) Dropped() (events int, dataBytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.droppedEvents, t.droppedBytes
}

// Note adds a meta event. The suite uses it to mark its own steps.
func (t *Transcript) Note(format string, args ...any) {
	t.add(DirMeta, []byte(fmt.Sprintf(format, args...)), false)
}

// add stores one event, cut to the event limit, or counts it as dropped if
// the transcript is full.
func (t *Transcript) add(dir Direction, data []byte, partial bool) {
	now := time.Now()

	t.mu.Lock()
	defer t.mu.Unlock()

	limit := t.maxSize
	if dir == DirMeta {
		limit += metaReserve
	}
	stored := min(len(data), t.maxEventSize)
	if t.size+eventOverhead+stored > limit {
		t.droppedEvents++
		t.droppedBytes += int64(len(data))
		return
	}

	t.size += eventOverhead + stored
	t.events = append(t.events, Event{
		Offset:    now.Sub(t.start),
		Time:      now,
		Dir:       dir,
		Data:      append(Bytes(nil), data[:stored]...),
		Size:      len(data),
		Truncated: stored < len(data),
		Partial:   partial,
	})
}

// transcriptJSON is the JSON form of a Transcript.
type transcriptJSON struct {
	Start         time.Time `json:"start"`
	MaxEventSize  int       `json:"max_event_size"`
	MaxSize       int       `json:"max_size"`
	StoredSize    int       `json:"stored_size"`
	DroppedEvents int       `json:"dropped_events"`
	DroppedBytes  int64     `json:"dropped_bytes"`
	Events        []Event   `json:"events"`
}

// MarshalJSON encodes the transcript with its limits and drop counters.
func (t *Transcript) MarshalJSON() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	events := t.events
	if events == nil {
		events = []Event{}
	}
	return json.Marshal(transcriptJSON{
		Start:         t.start,
		MaxEventSize:  t.maxEventSize,
		MaxSize:       t.maxSize,
		StoredSize:    t.size,
		DroppedEvents: t.droppedEvents,
		DroppedBytes:  t.droppedBytes,
		Events:        events,
	})
}

// UnmarshalJSON decodes the form that MarshalJSON writes. Offsets of the
// decoded events stay as stored, but Start loses its monotonic reading.
func (t *Transcript) UnmarshalJSON(data []byte) error {
	var decoded transcriptJSON
	if err := json.Unmarshal(data, &decoded); err != nil {
		return err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.start = decoded.Start
	t.maxEventSize = decoded.MaxEventSize
	t.maxSize = decoded.MaxSize
	t.size = decoded.StoredSize
	t.droppedEvents = decoded.DroppedEvents
	t.droppedBytes = decoded.DroppedBytes
	t.events = decoded.Events
	return nil
}

// Render formats the transcript like the transaction listings of the AMTP
// draft: "C: " and "S: " lines for the bytes on the wire and "* " lines
// for meta events, without times.
//
// Each line of data appears without its CRLF. A line that ends in a bare LF
// shows a trailing \n, and data that ends without any line ending shows a
// trailing "[no line ending]". Inside a line, a backslash appears as \\,
// CR, LF and TAB as \r, \n and \t, and every other control character,
// invisible format character or byte that is not valid UTF-8 as \xNN.
// The JSON form is exact, while this rendering is for reading.
func (t *Transcript) Render() string {
	t.mu.Lock()
	defer t.mu.Unlock()

	var out strings.Builder
	for _, event := range t.events {
		switch event.Dir {
		case DirClient, DirServer:
			renderData(&out, string(event.Dir)+": ", event.Data)
		default:
			out.WriteString("* ")
			out.WriteString(escapeForRender(event.Data))
			out.WriteString("\n")
		}
		if event.Truncated {
			fmt.Fprintf(&out, "* event cut to %d of %d bytes\n", len(event.Data), event.Size)
		}
	}
	if t.droppedEvents > 0 {
		fmt.Fprintf(&out, "* transcript limit of %d bytes reached: %d more events (%d bytes of data) not recorded\n",
			t.maxSize, t.droppedEvents, t.droppedBytes)
	}
	return out.String()
}

// renderData writes data as one prefixed line per line of data.
func renderData(out *strings.Builder, prefix string, data []byte) {
	if len(data) == 0 {
		out.WriteString(prefix + "[no data]\n")
		return
	}
	for len(data) > 0 {
		line := data
		end := len(data)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
			end = i + 1
		}
		data = data[end:]

		out.WriteString(prefix)
		switch {
		case bytes.HasSuffix(line, []byte("\r\n")):
			out.WriteString(escapeForRender(line[:len(line)-2]))
		case bytes.HasSuffix(line, []byte("\n")):
			out.WriteString(escapeForRender(line[:len(line)-1]))
			out.WriteString(`\n`)
		default:
			out.WriteString(escapeForRender(line))
			out.WriteString(" [no line ending]")
		}
		out.WriteString("\n")
	}
}
