package client

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// Message is one message and its envelope.
type Message struct {
	// From is the reverse-path without angle brackets; "" sends the null
	// reverse-path <>.
	From string
	// To lists the recipients, each without angle brackets.
	To []string
	// MPC is sent as the MPC parameter of MAIL in the spelling it has,
	// because section 5.2 forbids rewriting an MPC value.
	MPC mpc.Value
	// Data is the message, header section and body. Send converts bare LF
	// and bare CR to CRLF and adds dot-stuffing; Data itself is not
	// modified.
	Data []byte
}

// Status is the outcome of a message for one recipient.
type Status int

// Statuses of a recipient.
const (
	// Delivered means the server accepted the message for the recipient
	// (250 after the final "."); the server is now responsible for it.
	Delivered Status = iota + 1
	// TemporaryFailure means a 4xx reply, or a session that failed before
	// the server decided; send the message to this recipient again later.
	TemporaryFailure
	// PermanentFailure means a 5xx reply; return the message to the
	// sender for this recipient.
	PermanentFailure
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "accepted"
	case TemporaryFailure:
		return "temporary failure"
	case PermanentFailure:
		return "permanent failure"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// RecipientResult is the outcome of a message for one recipient.
type RecipientResult struct {
	Address string
	Status  Status
	// Reply is the reply that decided the status: the RCPT reply for a
	// rejected recipient, otherwise the reply to DATA or to the final ".".
	// It is the zero Reply when the session failed before the server
	// decided, and the error of Send then gives the reason.
	Reply Reply
}

// Result is the outcome of one message, with an entry for each recipient
// in the order of Message.To.
type Result struct {
	Recipients []RecipientResult
}

// AllDelivered reports whether every recipient has status Delivered.
func (r *Result) AllDelivered() bool {
	for _, rcpt := range r.Recipients {
		if rcpt.Status != Delivered {
			return false
		}
	}
	return len(r.Recipients) > 0
}

// preparedMessage is a message checked and encoded for the wire.
type preparedMessage struct {
	from      string
	to        []string
	data      []byte // CRLF line endings, without dot-stuffing
	eightBit  bool
	mailParam string // the MAIL parameters after the reverse-path
}

// Send runs one mail transaction and returns the outcome for each
// recipient. Several messages may be sent in turn on one Conn.
//
// Before MAIL, Send checks the message and evaluates the server's MPC
// declarations with Allows. When they deny the message's MPC value, Send
// sends QUIT, closes the connection and returns a *PolicyDeniedError.
//
// The error is nil when the transaction ran to its end, even when some or
// all recipients failed. The Result records each outcome. Otherwise the
// error is one of these:
//
//   - A permanent *Error wrapping ErrInvalidMessage, returned before
//     anything is sent, for a message that this server cannot accept: an
//     invalid address, a missing or undefined MPC value, a line over 998
//     octets, 8-bit data without 8BITMIME, or a size over the SIZE limit.
//   - An *Error with a nil Result for a rejected MAIL, temporary for a 4xx
//     reply and permanent for a 5xx reply. The session stays usable.
//   - A temporary *Error after a failed read or write, a timeout, the end
//     of ctx or a 421 reply. The connection is then closed. The Result
//     lists the recipients decided so far and marks the others
//     TemporaryFailure, or is nil when MAIL got no reply.
func (c *Conn) Send(ctx context.Context, msg Message) (*Result, error) {
	if c.closed {
		return nil, &Error{Op: "send", Server: c.addr, Temporary: true, Err: ErrClosed}
	}

	prepared, err := c.prepare(msg)
	if err != nil {
		return nil, &Error{Op: "message", Server: c.addr, Err: err}
	}

	// Section 4.4.2: when the declarations deny the value, the client
	// must send QUIT and must not retry the message.
	if !c.Allows(msg.MPC) {
		c.log.Debug("MPC value denied by the server's EHLO declarations", "mpc", msg.MPC.String(), "policy", c.policy.String())
		c.quit()
		return nil, &PolicyDeniedError{Server: c.addr, MPC: msg.MPC, Policy: append(mpc.Policy(nil), c.policy...)}
	}

	stop := c.watch(ctx)
	defer stop()

	t := &transaction{c: c, ctx: ctx, msg: prepared, result: &Result{}, accepted: make([]bool, len(prepared.to))}
	for _, rcpt := range prepared.to {
		t.result.Recipients = append(t.result.Recipients, RecipientResult{Address: rcpt, Status: TemporaryFailure})
	}
	if c.extensions.Pipelining {
		return t.runPipelined()
	}
	return t.runSequential()
}

// prepare checks msg against the grammar and the server's extensions and
// encodes its data.
func (c *Conn) prepare(msg Message) (*preparedMessage, error) {
	if from, _, err := smtp.ParseMail("FROM:<" + msg.From + ">"); err != nil || from != msg.From {
		return nil, invalidAddress("sender", msg.From, err)
	}
	if len(msg.To) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrInvalidMessage)
	}
	for _, rcpt := range msg.To {
		if to, _, err := smtp.ParseRcpt("TO:<" + rcpt + ">"); err != nil || to != rcpt {
			return nil, invalidAddress("recipient", rcpt, err)
		}
	}
	if msg.MPC == (mpc.Value{}) {
		return nil, fmt.Errorf("%w: the MPC value is missing; every AMTP message needs one, for example per/individual", ErrInvalidMessage)
	}
	if _, err := mpc.Parse(msg.MPC.String()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}

	p := &preparedMessage{
		from: msg.From,
		to:   msg.To,
		data: normalizeLineEndings(msg.Data),
	}
	if err := checkLineLengths(p.data); err != nil {
		return nil, err
	}
	p.eightBit = hasEightBit(p.data)

	params := []string{"MPC=" + msg.MPC.String()}
	if c.extensions.SizeOffered {
		if limit := c.extensions.Size; limit > 0 && int64(len(p.data)) > limit {
			return nil, fmt.Errorf("%w: the message is %d octets, but the server accepts at most %d (SIZE)", ErrInvalidMessage, len(p.data), limit)
		}
		params = append(params, fmt.Sprintf("SIZE=%d", len(p.data)))
	}
	if p.eightBit {
		if !c.extensions.EightBitMIME {
			return nil, fmt.Errorf("%w: the message contains 8-bit data, but the server does not offer 8BITMIME; encode the body as quoted-printable or base64", ErrInvalidMessage)
		}
		params = append(params, "BODY=8BITMIME")
	}
	p.mailParam = strings.Join(params, " ")
	return p, nil
}

// invalidAddress returns the error for an address that is not a valid
// path of RFC 5321, or that carries more than one path would, such as a
// ">" followed by parameters. The address is given without angle
// brackets.
func invalidAddress(role, address string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s %q is not a valid address: give it without angle brackets or parameters", ErrInvalidMessage, role, address)
	}
	return fmt.Errorf("%w: %s %q is not a valid address: %w", ErrInvalidMessage, role, address, err)
}

// transaction is one run of MAIL, RCPT and DATA.
type transaction struct {
	c      *Conn
	ctx    context.Context
	msg    *preparedMessage
	result *Result
	// accepted marks the recipients that the server accepted at RCPT.
	// They have no final status until the end of DATA.
	accepted []bool
}

func (t *transaction) mailLine() string {
	return "MAIL FROM:<" + t.msg.from + "> " + t.msg.mailParam
}

// runSequential sends each command and waits for its reply before the
// next, for servers without PIPELINING.
func (t *transaction) runSequential() (*Result, error) {
	c := t.c
	timeouts := c.cfg.Timeouts

	reply, err := c.command(t.ctx, "MAIL", t.mailLine(), timeouts.Mail)
	if err != nil {
		return nil, err
	}
	if !reply.Positive() {
		e := t.mailError(reply)
		t.reset()
		return nil, e
	}

	for i, rcpt := range t.msg.to {
		reply, err := c.command(t.ctx, "RCPT", "RCPT TO:<"+rcpt+">", timeouts.Rcpt)
		if err != nil {
			return t.result, err
		}
		if err := t.recordRcpt(i, reply); err != nil {
			return t.result, err
		}
	}

	if t.acceptedCount() == 0 {
		t.reset()
		return t.result, nil
	}

	reply, err = c.command(t.ctx, "DATA", "DATA", timeouts.DataInit)
	if err != nil {
		return t.result, err
	}
	return t.finishData(reply)
}

// runPipelined sends MAIL, every RCPT and DATA in one write and then reads
// the replies in order, as PIPELINING (RFC 2920) allows.
func (t *transaction) runPipelined() (*Result, error) {
	c := t.c
	timeouts := c.cfg.Timeouts

	lines := make([]string, 0, len(t.msg.to)+2)
	timeoutOf := make([]time.Duration, 0, len(t.msg.to)+2)
	lines = append(lines, t.mailLine())
	timeoutOf = append(timeoutOf, timeouts.Mail)
	for _, rcpt := range t.msg.to {
		lines = append(lines, "RCPT TO:<"+rcpt+">")
		timeoutOf = append(timeoutOf, timeouts.Rcpt)
	}
	lines = append(lines, "DATA")
	timeoutOf = append(timeoutOf, timeouts.DataInit)

	for _, line := range lines {
		c.log.Debug("AMTP command sent", "command", line, "pipelined", true)
	}
	// NOTE: the whole group is written before any reply is read. That is
	// safe while the commands fit the TCP buffers, which a hundred
	// recipients (about 30 KB) do. A list of many thousands could stall
	// both sides until Timeouts.Command ends the write, so callers should
	// split such a list.
	if err := c.writeLines(t.ctx, "MAIL", lines); err != nil {
		return nil, err
	}

	// replies[0] is the reply to MAIL, replies[1:len(to)+1] are those to
	// the RCPTs, and the last one is the reply to DATA. After a 421 the
	// server sends nothing more.
	replies := make([]Reply, 0, len(lines))
	for i := range lines {
		reply, err := c.readReply(t.ctx, commandName(lines[i]), timeoutOf[i])
		if err != nil {
			return t.pipelineReadFailed(replies, err)
		}
		replies = append(replies, reply)
		if reply.Code == 421 {
			break
		}
	}

	if !replies[0].Positive() {
		e := t.mailError(replies[0])
		t.abandonData(replies[len(replies)-1])
		return nil, e
	}
	for i := range t.msg.to {
		if i+1 >= len(replies) {
			break
		}
		if err := t.recordRcpt(i, replies[i+1]); err != nil {
			return t.result, err
		}
	}
	dataReply := replies[len(lines)-1]
	if t.acceptedCount() == 0 {
		// The server should have rejected DATA: with no recipient there
		// is nothing to send.
		t.abandonData(dataReply)
		return t.result, nil
	}
	return t.finishData(dataReply)
}

// pipelineReadFailed returns the outcome when reading the replies of a
// pipelined group failed after the replies already read; the connection
// is closed. A rejected MAIL is the failure to report, because the
// message never had a transaction.
func (t *transaction) pipelineReadFailed(replies []Reply, err error) (*Result, error) {
	switch {
	case len(replies) == 0:
		return nil, err
	case !replies[0].Positive():
		return nil, t.c.replyError("MAIL", replies[0], nil)
	}
	for i, reply := range replies[1:] {
		t.recordRcpt(i, reply)
	}
	return t.result, err
}

// commandName returns the verb of a command line.
func commandName(line string) string {
	verb, _, _ := strings.Cut(line, " ")
	return verb
}

// mailError returns the error for a MAIL reply other than 2xx. It ends
// the session after a 421 reply, and otherwise leaves the caller to
// reset the transaction.
func (t *transaction) mailError(reply Reply) *Error {
	e := t.c.replyError("MAIL", reply, nil)
	if reply.Code == 421 {
		t.c.fail(e)
	}
	return e
}

// recordRcpt records the reply to the RCPT of recipient i. A 421 reply
// ends the session: the server closes the connection.
func (t *transaction) recordRcpt(i int, reply Reply) error {
	rcpt := &t.result.Recipients[i]
	switch {
	case reply.Positive():
		// The status stays TemporaryFailure until the final reply.
		t.accepted[i] = true
	case reply.Permanent():
		rcpt.Status = PermanentFailure
		rcpt.Reply = reply
	default:
		rcpt.Status = TemporaryFailure
		rcpt.Reply = reply
	}
	if reply.Code == 421 {
		return t.c.fail(t.c.replyError("RCPT", reply, nil))
	}
	return nil
}

// acceptedCount returns how many recipients the server accepted at RCPT.
func (t *transaction) acceptedCount() int {
	n := 0
	for _, ok := range t.accepted {
		if ok {
			n++
		}
	}
	return n
}

// finishData sends the message after a 354 reply to DATA and records the
// final reply for every accepted recipient. Any other reply to DATA
// decides for them instead.
func (t *transaction) finishData(dataReply Reply) (*Result, error) {
	c := t.c
	if dataReply.Code != 354 {
		t.decideAccepted(dataReply)
		if dataReply.Code == 421 {
			return t.result, c.fail(c.replyError("DATA", dataReply, nil))
		}
		t.reset()
		return t.result, nil
	}

	c.setWriteTimeout(c.cfg.Timeouts.DataBlock)
	if err := writeDotStuffed(c.w, t.msg.data); err != nil {
		return t.result, c.ioError(t.ctx, "DATA", "send the message data", c.cfg.Timeouts.DataBlock, err)
	}
	c.log.Debug("AMTP message data sent", "octets", len(t.msg.data), "eight_bit", t.msg.eightBit)

	final, err := c.readReply(t.ctx, "DATA", c.cfg.Timeouts.DataEnd)
	if err != nil {
		return t.result, err
	}
	t.decideAccepted(final)
	if final.Code == 421 {
		return t.result, c.fail(c.replyError("DATA", final, nil))
	}
	return t.result, nil
}

// decideAccepted sets the status of every accepted recipient from reply.
func (t *transaction) decideAccepted(reply Reply) {
	for i := range t.result.Recipients {
		if !t.accepted[i] {
			continue
		}
		rcpt := &t.result.Recipients[i]
		rcpt.Reply = reply
		switch {
		case reply.Positive():
			rcpt.Status = Delivered
		case reply.Permanent():
			rcpt.Status = PermanentFailure
		default:
			rcpt.Status = TemporaryFailure
		}
	}
}

// abandonData ends a pipelined transaction whose DATA command went out
// although there is nothing to send. If the server nevertheless replied
// 354, a lone "." ends the data section with no content. Then RSET clears
// the transaction.
func (t *transaction) abandonData(dataReply Reply) {
	c := t.c
	if c.closed {
		return
	}
	if dataReply.Code == 354 {
		c.setWriteTimeout(c.cfg.Timeouts.DataBlock)
		if err := writeDotStuffed(c.w, nil); err != nil {
			c.log.Info("ending an unwanted DATA section failed; connection closed", "error", c.ioError(t.ctx, "DATA", "send the end of data", c.cfg.Timeouts.DataBlock, err))
			return
		}
		if _, err := c.readReply(t.ctx, "DATA", c.cfg.Timeouts.DataEnd); err != nil {
			c.log.Info("reading the reply to an unwanted DATA section failed; connection closed", "error", err)
			return
		}
	}
	t.reset()
}

// reset sends RSET so the next transaction starts clean. A failure is
// logged, and the next Send reports the closed connection.
func (t *transaction) reset() {
	c := t.c
	if c.closed {
		return
	}
	reply, err := c.command(t.ctx, "RSET", "RSET", c.cfg.Timeouts.Command)
	switch {
	case err != nil:
		c.log.Info("RSET failed; connection closed", "error", err)
	case !reply.Positive():
		c.log.Info("RSET rejected; closing the connection", "reply", reply.String())
		c.quit()
	}
}
