package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/message"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// cmdDATA receives the message, checks it and hands it to the deliverer.
// The 250 reply is sent only after the deliverer has made the message
// durable, so a message that got 250 is never lost.
func (s *session) cmdDATA(arg string) error {
	switch {
	case arg != "":
		return s.fail(replyNoArgs)
	case s.tx == nil:
		return s.fail(replyNeedMail)
	case len(s.tx.recipients) == 0 && s.tx.attempts > 0:
		// RFC 5321 section 3.3: no valid recipients.
		return s.fail(reply{codeTransactionFailed, "5.5.1", "No valid recipients"})
	case len(s.tx.recipients) == 0:
		return s.fail(replyNeedRcpt)
	}

	if err := s.reply(codeStartMailInput, "", "Start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return err
	}

	s.mu.Lock()
	s.readTimeout = s.srv.cfg.Limits.DataTimeout.Duration
	s.mu.Unlock()

	// NOTE: the message is held in memory and copied when trace fields
	// are added, so a session can hold about three times
	// max_message_size at its peak; reading into the spool file would
	// bound memory by the buffer size instead.
	maxSize := s.srv.cfg.Limits.MaxMessageSize
	msg, err := smtp.ReadData(s.r, maxSize, discardLimit(maxSize))
	if err != nil {
		return s.dataReadFailed(err)
	}

	tx := s.tx
	s.resetTransaction()

	// Section 4.4.4: a message that already has an MPC header field is
	// neither relayed nor delivered.
	if message.HasMPCField(msg) {
		s.rejected++
		s.log.Warn("message rejected: pre-existing MPC header field", "from", tx.from, "mpc", tx.mpc.String())
		return s.sendReply(replyMPCHeader)
	}

	env := &delivery.Envelope{
		ID:         newID(),
		From:       tx.from,
		Recipients: tx.recipients,
		MPC:        tx.mpc,
		ReceivedAt: time.Now(),
		ClientAddr: s.remote.String(),
		ClientCN:   s.identity.CN,
		Private:    s.ep.kind == kindPrivate,
	}
	msg = message.Prepend(msg, message.Field{Name: "Received", Value: s.receivedField(env)})

	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Limits.DataTimeout.Duration)
	err = s.srv.deliverer.Deliver(ctx, env, msg)
	cancel()
	if err != nil {
		s.rejected++
		s.log.Error("queueing failed; replied 451 so the client retries", "id", env.ID, "error", err)
		return s.sendReply(replyLocalError)
	}

	s.accepted++
	s.recipients += len(env.Recipients)
	s.log.Info("message accepted", "id", env.ID, "from", env.From, "rcpt", shortList(env.Recipients, 5),
		"mpc", env.MPC.String(), "size", len(msg))
	return s.reply(codeOK, "2.0.0", "OK: queued as "+env.ID)
}

// discardLimit is how much message data the server reads and drops after
// the message has grown past maxSize, to stay in step with the client,
// before it gives up and closes the connection.
func discardLimit(maxSize int64) int64 {
	return 2*maxSize + smtp.MaxTextLine
}

// dataReadFailed replies to a DATA section that could not be accepted.
func (s *session) dataReadFailed(err error) error {
	s.resetTransaction()
	s.rejected++

	var dataErr *smtp.DataError
	switch {
	case errors.As(err, &dataErr) && errors.Is(err, smtp.ErrTooLarge):
		s.log.Info("message rejected: too large", "max_message_size", s.srv.cfg.Limits.MaxMessageSize)
		return s.sendReply(reply{codeExceededStorage, "5.3.4", fmt.Sprintf("Message size exceeds the maximum of %d octets", s.srv.cfg.Limits.MaxMessageSize)})

	case errors.As(err, &dataErr) && errors.Is(err, smtp.ErrLineTooLong):
		s.log.Info("message rejected: text line too long", "line", dataErr.Line)
		return s.fail(reply{codeSyntaxError, "5.5.2", fmt.Sprintf("Line %d exceeds %d octets", dataErr.Line, smtp.MaxTextLine)})

	case errors.As(err, &dataErr) && dataErr.Unsynchronized:
		// A "." line next to a bare LF: an LF-only client thinks its
		// message ended, or an SMTP smuggling attempt hides a second
		// transaction behind it. Either way the session cannot know where
		// the client is, so nothing after this point is read.
		s.outcome = "bare_lf_in_data"
		s.log.Warn("closing session: message data ends with a bare LF", "line", dataErr.Line)
		s.sendReply(reply{codeTransactionFailed, "5.5.2", fmt.Sprintf("Bare LF in message data at line %d; lines must end with CRLF. Closing connection", dataErr.Line)})
		return errCloseSession

	case errors.As(err, &dataErr):
		// Bare CR or LF: the data is rejected as a whole, so SMTP
		// smuggling ("\r.\r" followed by a second message) cannot pass.
		s.log.Warn("message rejected: bare CR or LF in message data", "line", dataErr.Line, "error", dataErr.Err)
		return s.fail(reply{codeTransactionFailed, "5.5.2", fmt.Sprintf("Bare CR or LF at line %d; lines must end with CRLF", dataErr.Line)})

	case errors.Is(err, smtp.ErrDiscardCap):
		s.outcome = "message_too_large"
		s.log.Warn("closing session: message data far exceeds the maximum size", "max_message_size", s.srv.cfg.Limits.MaxMessageSize)
		s.sendReply(reply{codeExceededStorage, "5.3.4", "Message size exceeds the maximum; closing connection"})
		return errCloseSession

	case isTimeout(err):
		s.outcome = "data_timeout"
		s.log.Info("closing session: timeout in DATA")
		s.sendReply(replyTimeout)
		return errCloseSession

	case s.srv.shutdown.Load() && (errors.Is(err, net.ErrClosed) || isTimeout(err)):
		s.outcome = "shutdown_in_data"
		s.log.Warn("shutdown_timeout expired while the client was sending DATA; message discarded, the client will retry it")
		return errCloseSession

	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.outcome = "client_closed_in_data"
		s.log.Info("client closed the connection in DATA; message discarded")
		return errCloseSession
	}
	s.outcome = "read_failed"
	s.log.Info("session ended by read error in DATA", "error", err)
	return errCloseSession
}

// receivedField returns the value of the Received trace field (RFC 5321
// section 4.4), naming the client's EHLO argument, PTR and address.
func (s *session) receivedField(env *delivery.Envelope) string {
	from := s.ehlo
	if s.identity != nil && len(s.identity.PTR) > 0 {
		from += " (" + s.identity.PTR[0] + " [" + s.clientIP().String() + "])"
	} else {
		from += " ([" + s.clientIP().String() + "])"
	}

	protocol := "AMTP"
	if s.authUser != "" {
		protocol = "AMTPA"
	}
	st := s.conn.ConnectionState()
	field := fmt.Sprintf("from %s\r\n\tby %s with %s (%s %s)\r\n\tid %s",
		from, s.srv.hostname, protocol, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), env.ID)
	if len(env.Recipients) == 1 {
		field += "\r\n\tfor <" + env.Recipients[0] + ">"
	}
	return field + "; " + env.ReceivedAt.Format(time.RFC1123Z)
}
