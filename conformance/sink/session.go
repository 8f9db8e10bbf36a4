package sink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// errLineTooLong is returned by readLine for a line over the limit.
var errLineTooLong = errors.New("line too long")

// session is one client connection.
type session struct {
	server   *Server
	conn     net.Conn
	reader   *bufio.Reader
	deadline time.Time

	ehlo        string
	clientCN    string
	clientChain []*x509.Certificate
	commands    []string
	// tx is the transaction in progress, nil before MAIL.
	tx *Transaction
}

func (s *Server) serve(raw net.Conn) {
	log := s.cfg.Logger.With("peer", raw.RemoteAddr().String())
	ses := &session{server: s, conn: raw, deadline: time.Now().Add(s.cfg.SessionTimeout)}
	started := time.Now()

	if !s.cfg.PlainText {
		conn := tls.Server(raw, s.tls)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommandTimeout)
		err := conn.HandshakeContext(ctx)
		cancel()
		if err != nil {
			log.Info("AMTP sink TLS handshake failed", "error", err)
			return
		}
		ses.clientChain = conn.ConnectionState().PeerCertificates
		if len(ses.clientChain) > 0 {
			ses.clientCN = ses.clientChain[0].Subject.CommonName
		}
		ses.conn = conn
	}
	ses.reader = bufio.NewReaderSize(ses.conn, s.cfg.MaxLineLength)

	err := ses.run()
	s.storeSession(SessionRecord{
		Source:      ses.source(),
		ClientCN:    ses.clientCN,
		ClientChain: ses.clientChain,
		Commands:    ses.commands,
		Started:     started,
	})
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		log.Info("AMTP sink session ended with an error", "error", err, "client_cn", ses.clientCN)
	}
}

func (ses *session) source() netip.AddrPort {
	return ses.conn.RemoteAddr().(*net.TCPAddr).AddrPort()
}

func (ses *session) reply(line string) error {
	if err := ses.setDeadline(); err != nil {
		return err
	}
	_, err := ses.conn.Write([]byte(line + "\r\n"))
	return err
}

// setDeadline bounds the next step by the command timeout and the end of
// the session.
func (ses *session) setDeadline() error {
	if time.Now().After(ses.deadline) {
		return errors.New("session timeout expired")
	}
	step := time.Now().Add(ses.server.cfg.CommandTimeout)
	if step.After(ses.deadline) {
		step = ses.deadline
	}
	return ses.conn.SetDeadline(step)
}

// readLine reads one line without its CRLF (or bare LF). A line over the
// limit returns errLineTooLong after the rest of it is discarded, up to
// 1024 times the limit. A longer line ends the session.
func (ses *session) readLine() (string, error) {
	if err := ses.setDeadline(); err != nil {
		return "", err
	}
	line, err := ses.reader.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for range 1024 {
			if _, err = ses.reader.ReadSlice('\n'); !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil {
			return "", err
		}
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
}

func (ses *session) run() error {
	cfg := ses.server.cfg
	if err := ses.reply("220 " + cfg.Hostname + " AMTP sink ready"); err != nil {
		return err
	}
	// Each command gets a reply, so the number of commands of a session
	// is bounded by the session timeout and this count.
	for range 10000 {
		line, err := ses.readLine()
		if errors.Is(err, errLineTooLong) {
			if err := ses.reply("500 5.5.2 Line too long"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(ses.commands) < MaxSessionCommands {
			ses.commands = append(ses.commands, line)
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			err = ses.hello(strings.ToUpper(verb), arg)
		case "MAIL":
			err = ses.mail(line, arg)
		case "RCPT":
			err = ses.rcpt(arg)
		case "DATA":
			err = ses.data()
		case "RSET":
			ses.tx = nil
			err = ses.reply("250 2.0.0 OK")
		case "NOOP":
			err = ses.reply("250 2.0.0 OK")
		case "QUIT":
			ses.reply("221 2.0.0 " + cfg.Hostname + " closing connection")
			return nil
		default:
			err = ses.reply("502 5.5.1 Command not implemented")
		}
		if err != nil {
			return err
		}
	}
	return ses.reply("421 4.7.0 Too many commands, closing connection")
}

func (ses *session) hello(verb, arg string) error {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return ses.reply("501 5.5.4 " + verb + " needs a domain")
	}
	ses.ehlo = arg
	ses.tx = nil
	cfg := ses.server.cfg
	if verb == "HELO" {
		return ses.reply("250 " + cfg.Hostname)
	}
	lines := []string{cfg.Hostname + " greets " + arg}
	lines = append(lines, cfg.MPCLines...)
	lines = append(lines, "8BITMIME", fmt.Sprintf("SIZE %d", cfg.MaxMessageSize))
	var b strings.Builder
	for i, line := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + line + "\r\n")
	}
	return ses.reply(strings.TrimSuffix(b.String(), "\r\n"))
}

// mail starts a transaction. The parameters are kept as sent, so that a
// check can compare them octet for octet.
func (ses *session) mail(line, arg string) error {
	if ses.ehlo == "" {
		return ses.reply("503 5.5.1 EHLO first")
	}
	if ses.tx != nil {
		return ses.reply("503 5.5.1 Nested MAIL command")
	}
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		return ses.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
	}
	path, params, ok := parsePath(rest)
	if !ok {
		return ses.reply("501 5.1.7 Invalid reverse-path")
	}
	ses.tx = &Transaction{
		EHLO:           ses.ehlo,
		MailCommand:    line,
		ReversePath:    path,
		MailParameters: params,
		ClientCN:       ses.clientCN,
		ClientChain:    ses.clientChain,
		Source:         ses.source(),
	}
	return ses.reply("250 2.1.0 OK")
}

func (ses *session) rcpt(arg string) error {
	if ses.tx == nil {
		return ses.reply("503 5.5.1 MAIL first")
	}
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		return ses.reply("501 5.5.4 Syntax: RCPT TO:<address>")
	}
	path, _, ok := parsePath(rest)
	if !ok || path == "" {
		return ses.reply("501 5.1.3 Invalid forward-path")
	}
	if ses.server.cfg.RCPTReply != "" {
		return ses.reply(ses.server.cfg.RCPTReply)
	}
	if len(ses.tx.Recipients) >= ses.server.cfg.MaxRecipients {
		return ses.reply("452 4.5.3 Too many recipients")
	}
	ses.tx.Recipients = append(ses.tx.Recipients, path)
	return ses.reply("250 2.1.5 OK")
}

// data reads the message up to the "." line, removes the dot-stuffing
// and stores the transaction.
func (ses *session) data() error {
	if ses.tx == nil || len(ses.tx.Recipients) == 0 {
		return ses.reply("503 5.5.1 RCPT first")
	}
	if err := ses.reply("354 End data with <CR><LF>.<CR><LF>"); err != nil {
		return err
	}
	var data bytes.Buffer
	tooLong, tooBig := false, false
	for {
		line, err := ses.readLine()
		if errors.Is(err, errLineTooLong) {
			tooLong = true
			continue
		}
		if err != nil {
			return err
		}
		if line == "." {
			break
		}
		line = strings.TrimPrefix(line, ".")
		if data.Len()+len(line)+2 > ses.server.cfg.MaxMessageSize {
			tooBig = true
			continue
		}
		data.WriteString(line)
		data.WriteString("\r\n")
	}

	tx := *ses.tx
	tx.Commands = slices.Clone(ses.commands)
	ses.tx = nil
	switch {
	case tooLong:
		return ses.reply("500 5.5.2 Line too long")
	case tooBig:
		return ses.reply("552 5.3.4 Message too big")
	}
	tx.Data = data.Bytes()
	tx.Received = time.Now()
	tx.Reply = "250 2.0.0 OK"
	if ses.server.cfg.DataReply != "" {
		tx.Reply = ses.server.cfg.DataReply
	}
	ses.server.store(tx)
	return ses.reply(tx.Reply)
}

// parsePath splits "<path> params" into the path without brackets and the
// parameters as sent.
func parsePath(s string) (path string, params []string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if !strings.HasPrefix(s, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return "", nil, false
	}
	path = s[1:end]
	if strings.ContainsAny(path, " <") {
		return "", nil, false
	}
	return path, strings.Fields(s[end+1:]), true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}
