package probe

// AddEvent adds an event to t, for tests of the transcript limits and
// rendering without a connection.
func AddEvent(t *Transcript, dir Direction, data []byte, partial bool) {
	t.add(dir, data, partial)
}

// EventOverhead is the per-event charge against the transcript limit.
var EventOverhead = eventOverhead
