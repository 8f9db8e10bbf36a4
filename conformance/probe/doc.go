// Package probe is the raw wire client of the AMTP conformance suite.
//
// AMTP (draft-weinman-amtp-03) is SMTP over implicit TLS: the client opens
// TCP, starts TLS on the first byte, presents an X.509 client certificate
// whose CN must equal the PTR record of its source address, and then speaks
// SMTP with EHLO and a MAIL FROM parameter MPC=role/class.
//
// The probe is not a well-behaved client. It sends exactly the bytes it is
// given and reads replies defensively, because the suite drives any AMTP
// server, including broken and hostile ones, and keeps evidence for every
// verdict:
//
//   - Dial connects from a chosen local source address, then runs a TLS
//     client handshake with any client certificate or none, any trust
//     anchors, TLS versions and session cache. Options.PlainTCP skips TLS.
//   - Conn.Send and Conn.SendLine write raw bytes. There are no command
//     helpers.
//   - Conn.ReadReply parses one SMTP reply (RFC 5321 section 4.2) under a
//     line length limit, a line count limit and one absolute deadline per
//     reply. Each failure wraps a sentinel error: ErrTimeout,
//     ErrLineTooLong, ErrTooManyLines, ErrMalformedReply or ErrClosed.
//   - Conn.ExpectClose reports whether the server closes the connection
//     before a deadline.
//   - Every byte sent and received, and every connection event, goes into a
//     Transcript with monotonic offsets and wall-clock times. The
//     transcript has size limits, serializes to JSON and renders as
//     "C: ..." and "S: ..." lines.
//   - Conn.TLS returns the negotiated TLS parameters, both certificate
//     chains and any TLS alert the server sent.
//
// Nothing in this package imports the reference implementation: the suite
// keeps its own reading of the protocol.
package probe
