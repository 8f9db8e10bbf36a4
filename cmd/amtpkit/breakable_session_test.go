package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// session is one SMTP session of the breakable server.
type session struct {
	server *breakableServer
	kind   listenerKind
	source netip.Addr
	// peer is the client certificate, nil without one.
	peer *x509.Certificate
	// plain marks a session without TLS (fault acceptPlainText).
	plain bool

	conn   net.Conn
	reader *bufio.Reader

	// ehloDone is set by a successful EHLO, and cn is the CN it admitted.
	ehloDone bool
	cn       string
	// authenticated is set by a successful AUTH on the private listener.
	authenticated bool
	errors        int
	// afterMessage is set when the last command delivered a message.
	afterMessage bool
	// waitingForCommand is set while the session waits for the first
	// octet of a command, which breakableCommandTimeout bounds.
	waitingForCommand bool

	tx transaction
}

// transaction is the state of a mail transaction.
type transaction struct {
	hasSender  bool
	sender     string
	mpc        string
	recipients []string
	// discarded counts the accepted recipients whose copies the server
	// drops (fault acceptRelayDrop).
	discarded int
}

// hasRecipients reports whether the transaction accepted a recipient.
func (t transaction) hasRecipients() bool {
	return len(t.recipients)+t.discarded > 0
}

// errCloseSession ends a session after its last reply.
var errCloseSession = errors.New("session closed")

// Errors of readCommand that get a 500 reply, after which the session goes
// on.
var (
	errLineTooLong = errors.New("line too long")
	errBareEnding  = errors.New("bare CR or LF in a command line")
)

// run greets the client, if greet is set, and serves commands until the
// client quits or the connection fails.
func (sess *session) run(conn net.Conn, greet bool) {
	sess.conn = conn
	sess.reader = bufio.NewReader(conn)
	if greet && sess.server.has(rejectAtGreeting) {
		if problem := sess.identityProblemAtGreeting(); problem != "" {
			sess.server.config.logf("breakable server: session from %s rejected at the greeting: %s", sess.source, problem)
			sess.write("421 4.7.1 " + sess.hostname() + " Error: " + problem)
			return
		}
	}
	if greet {
		greeting := "220 " + sess.hostname() + " AMTP breakable test server ready"
		if sess.server.has(greetingWithoutDomain) {
			greeting = "220 (breakable) AMTP test server ready"
		}
		if sess.write(greeting) != nil {
			return
		}
	}

	for range maxCommands {
		sess.waitingForCommand = true
		line, err := sess.readCommand()
		sess.waitingForCommand = false
		var netErr net.Error
		switch {
		case errors.As(err, &netErr) && netErr.Timeout():
			sess.write("421 4.4.2 " + sess.hostname() + " idle timeout, closing connection")
			return
		case errors.Is(err, errLineTooLong):
			err = sess.syntaxError("500 5.5.2 Line too long")
		case errors.Is(err, errBareEnding):
			err = sess.syntaxError("500 5.5.2 Bare CR or LF; end lines with CRLF")
		case err != nil:
			return
		default:
			err = sess.command(line)
		}
		if err != nil {
			if !errors.Is(err, errCloseSession) {
				sess.server.config.logf("breakable server: session from %s: %v", sess.source, err)
			}
			return
		}
	}
}

// identityProblemAtGreeting checks the client certificate and the PTR
// records before the greeting, with the certificate CN in place of the
// EHLO argument, which the client has not sent yet. It returns why the
// client fails, or "".
func (sess *session) identityProblemAtGreeting() string {
	if sess.peer == nil {
		return "No client certificate presented"
	}
	return sess.server.checkIdentity(sess.kind, sess.peer, sess.source, sess.peer.Subject.CommonName).problem
}

func (sess *session) hostname() string {
	entry, err := sess.server.config.manifest.Cert(pki.CertServer)
	if err != nil {
		return "localhost"
	}
	return entry.CN
}

func (sess *session) has(f fault) bool {
	return sess.server.has(f)
}

// write sends reply lines, each ended by CRLF.
func (sess *session) write(lines ...string) error {
	sess.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := sess.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	return err
}

// syntaxError sends a reply to a syntax or sequence error, or 421 and
// errCloseSession once the session has too many of them.
func (sess *session) syntaxError(reply string) error {
	sess.errors++
	limit := maxErrors
	if sess.has(lowErrorLimit) {
		limit = 2
	}
	if sess.errors >= limit {
		sess.write("421 4.7.0 Too many errors, closing the connection")
		return errCloseSession
	}
	return sess.write(reply)
}

// readLine reads up to and including the next LF. It fails when the line
// grows past maxReadLine.
func (sess *session) readLine() ([]byte, error) {
	var line []byte
	for {
		timeout := ioTimeout
		if sess.waitingForCommand && len(line) == 0 && sess.reader.Buffered() == 0 {
			timeout = breakableCommandTimeout
		}
		sess.conn.SetReadDeadline(time.Now().Add(timeout))
		chunk, err := sess.reader.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		case len(line) > maxReadLine:
			return nil, fmt.Errorf("a line grew past %d octets without LF", maxReadLine)
		}
	}
}

// readCommand reads one command line and returns it without CRLF. Only
// CRLF ends a line, so a line with a bare LF or CR is read to its CRLF and
// rejected with errBareEnding.
func (sess *session) readCommand() (string, error) {
	var line []byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		part, err := sess.readLine()
		if err != nil {
			return "", err
		}
		line = append(line, part...)
		if sess.has(bareLFEndsCommand) {
			break
		}
		if len(line) > maxReadLine {
			return "", fmt.Errorf("a command line grew past %d octets without CRLF", maxReadLine)
		}
	}

	limit := maxCommandLine
	switch {
	case sess.has(noLineLimit):
		limit = maxReadLine
	case sess.has(shortCommandLimit):
		limit = maxCommandLine - 2
	}
	if len(line) > limit {
		return "", errLineTooLong
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if strings.ContainsAny(text, "\r\n") {
		return "", errBareEnding
	}
	return text, nil
}

// command runs one command line.
func (sess *session) command(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	afterMessage := sess.afterMessage
	sess.afterMessage = false

	known := []string{"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "AUTH"}
	if !slices.Contains(known, verb) {
		if sess.has(unknownCommand502) {
			return sess.syntaxError("502 5.5.1 Command not implemented")
		}
		return sess.syntaxError("500 5.5.2 Command unrecognized")
	}

	beforeEHLO := []string{"EHLO", "HELO", "NOOP", "QUIT", "RSET", "VRFY", "HELP"}
	if sess.has(rejectCommandsBeforeEHLO) {
		beforeEHLO = []string{"EHLO", "HELO", "NOOP", "QUIT", "HELP"}
	}
	if !sess.ehloDone && !sess.plain && !slices.Contains(beforeEHLO, verb) {
		return sess.syntaxError("503 5.5.1 Send EHLO first")
	}

	switch verb {
	case "EHLO":
		return sess.ehlo(strings.TrimSpace(arg))
	case "HELO":
		if sess.has(acceptHELO) || (sess.has(acceptHELOAfterEHLO) && sess.ehloDone) {
			return sess.write("250 " + sess.hostname())
		}
		return sess.write("504 5.5.1 HELO is not supported; use EHLO")
	case "MAIL":
		return sess.mail(arg)
	case "RCPT":
		return sess.rcpt(arg)
	case "DATA":
		return sess.data()
	case "RSET":
		return sess.rset(afterMessage)
	case "NOOP":
		if sess.has(noopInTransactionRejected) && sess.tx.hasSender {
			return sess.syntaxError("503 5.5.1 NOOP is not allowed in a transaction")
		}
		return sess.write("250 2.0.0 OK")
	case "QUIT":
		if err := sess.write("221 2.0.0 " + sess.hostname() + " closing connection"); err != nil {
			return err
		}
		if sess.has(quitKeepsOpen) {
			return nil
		}
		return errCloseSession
	case "VRFY":
		return sess.vrfy(strings.TrimSpace(arg))
	case "EXPN":
		return sess.write("502 5.5.1 EXPN is not implemented")
	case "HELP":
		if sess.has(helpBadReplyCode) {
			return sess.write("199 Commands: EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP")
		}
		return sess.write("214-Commands: EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP", "214 End of HELP")
	default:
		return sess.auth(arg)
	}
}

// ehlo checks the client's identity and replies with the extensions.
func (sess *session) ehlo(arg string) error {
	if arg == "" {
		return sess.syntaxError("501 5.5.4 EHLO needs the client's domain")
	}
	if sess.has(invalidEHLOReplyCode) {
		return sess.write("999 what")
	}
	sess.tx = transaction{}
	if !sess.plain {
		a := sess.server.checkIdentity(sess.kind, sess.peer, sess.source, arg)
		switch {
		case a.temporary:
			sess.server.config.logf("breakable server: %s listener: EHLO %s from %s: %s", sess.kind, arg, sess.source, a.problem)
			sess.write("421 4.4.3 DNS lookup failed, try again later")
			return errCloseSession
		case a.problem != "":
			sess.server.config.logf("breakable server: %s listener: EHLO %s from %s rejected: %s", sess.kind, arg, sess.source, a.problem)
			sess.ehloDone = false
			return sess.write("504 5.7.0 Authentication failed")
		}
		if sess.peer != nil {
			sess.cn = sess.peer.Subject.CommonName
		}
	}
	sess.ehloDone = true

	code := "250"
	lines := []string{sess.hostname() + " greets " + arg}
	if line := sess.server.config.mpcLine; line != "" {
		if sess.has(badMPCLine) {
			line = "MPC DENY=optout"
		}
		lines = append(lines, line)
	}
	lines = append(lines, "PIPELINING")
	if sess.has(advertiseUnimplemented) {
		lines = append(lines, "EXPN")
	}
	if sess.kind == privateKind && !sess.has(noAuthAdvertised) {
		lines = append(lines, "AUTH PLAIN")
	}
	lines = append(lines, "HELP")

	reply := make([]string, len(lines))
	for i, text := range lines {
		separator := "-"
		if i == len(lines)-1 {
			separator = " "
			if sess.has(wrongMultiline) {
				separator = "\t"
			}
		}
		lineCode := code
		if i == 1 && sess.has(mixedMultilineCodes) {
			lineCode = "251"
		}
		reply[i] = lineCode + separator + text
	}
	return sess.write(reply...)
}

// mailPath matches "FROM:<path>" with its parameters.
var mailPath = regexp.MustCompile(`(?i)^FROM:<([^<>\s]*)>((?: +\S+)*) *$`)

// mpcValue matches the grammar of an MPC value (draft section 4.5).
var mpcValue = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*)/([A-Za-z0-9][A-Za-z0-9-]*)$`)

// The roles and classes of draft section 4.5.
var (
	mpcRoles   = []string{"per", "com", "ngo", "net", "gov", "pol", "mpc"}
	mpcClasses = []string{"individual", "autoresponse", "customer", "optout", "optin", "confirmed"}
)

// mail runs MAIL: the sequence, AUTH on the private listener, exactly one
// MPC parameter with a defined value, and the MPC policy, which denies
// every value of the class optout.
func (sess *session) mail(arg string) error {
	if sess.kind == privateKind && !sess.authenticated && !sess.has(noAuthRequired) {
		return sess.write("530 5.7.0 Authentication required")
	}
	if sess.tx.hasSender {
		if !sess.has(nestedMailResets) {
			return sess.syntaxError("503 5.5.1 Nested MAIL command")
		}
		sess.tx = transaction{}
	}

	match := mailPath.FindStringSubmatch(arg)
	if match == nil {
		return sess.syntaxError("501 5.5.4 Syntax: MAIL FROM:<address> MPC=role/class")
	}
	var values []string
	for _, param := range strings.Fields(match[2]) {
		key, value, _ := strings.Cut(param, "=")
		if !strings.EqualFold(key, "MPC") {
			return sess.write("555 5.5.4 Unknown MAIL parameter " + key)
		}
		if sess.kind == publicKind && sess.has(rejectEveryMPC) {
			return sess.write("555 5.5.4 Unsupported option: " + param)
		}
		values = append(values, value)
	}

	switch {
	case len(values) == 0 && sess.has(keepSenderWithoutMPC):
		sess.tx = transaction{hasSender: true, sender: match[1]}
		return sess.syntaxError("501 5.5.4 MAIL needs exactly one MPC parameter")
	case len(values) == 0 && !sess.has(ignoreMissingMPC):
		return sess.syntaxError("501 5.5.4 MAIL needs exactly one MPC parameter")
	case len(values) > 1 && !sess.has(acceptTwoMPC):
		return sess.syntaxError("501 5.5.4 MAIL needs exactly one MPC parameter")
	}

	value := ""
	if len(values) > 0 {
		value = values[len(values)-1]
		if reply := sess.mpcRejection(value); reply != "" {
			return sess.write(reply)
		}
	}
	// The recipients stay: only the faults acceptRCPTBeforeMAIL and
	// rsetKeepsRecipients leave any before MAIL.
	sess.tx.hasSender, sess.tx.sender, sess.tx.mpc = true, match[1], value
	return sess.write("250 2.1.0 Sender OK")
}

// mpcRejection returns the reply that rejects an MPC value, or "" when
// the value is accepted.
func (sess *session) mpcRejection(value string) string {
	parts := mpcValue.FindStringSubmatch(value)
	if parts == nil {
		return "501 5.5.4 Invalid MPC value " + value
	}
	role, class := strings.ToLower(parts[1]), strings.ToLower(parts[2])
	defined := slices.Contains(mpcRoles, role) && slices.Contains(mpcClasses, class)
	switch {
	case !defined && !sess.has(acceptUndefinedMPC):
		return "550 5.7.1 MPC value " + value + " is not defined"
	case role == "mpc" && class != "individual" && !sess.has(acceptMPCOptin):
		return "550 5.7.1 The MPC role mpc goes only with the class individual"
	case role == "mpc" && class == "individual":
		// Section 4.5: every server accepts mpc/individual, whatever its
		// policy.
		if sess.has(rejectMPCIndividual) {
			return "550 5.7.1 MPC policy violation"
		}
		return ""
	case class == "optout" && !(sess.has(caseSensitivePolicy) && parts[2] != "optout"):
		if sess.has(wrongMPCRejectCode) {
			return "553 5.7.1 MPC policy violation"
		}
		return "550 5.7.1 MPC policy violation"
	}
	return ""
}

// rcptPath matches "TO:<local@domain>".
var rcptPath = regexp.MustCompile(`(?i)^TO:<([^<>@\s]+)@([^<>@\s]+)> *$`)

// rcpt runs RCPT: local mailboxes only, and at most maxRecipients.
func (sess *session) rcpt(arg string) error {
	if !sess.tx.hasSender && !sess.has(acceptRCPTBeforeMAIL) {
		return sess.syntaxError("503 5.5.1 Send MAIL first")
	}
	match := rcptPath.FindStringSubmatch(arg)
	if match == nil {
		return sess.syntaxError("501 5.5.4 Syntax: RCPT TO:<address>")
	}
	local, domain := strings.ToLower(match[1]), strings.ToLower(match[2])

	limit := maxRecipients
	if sess.has(recipientLimit50) {
		limit = 50
	}
	if len(sess.tx.recipients) >= limit {
		if sess.has(recipientLimitCode550) {
			return sess.write("550 5.5.3 Too many recipients")
		}
		return sess.write("452 4.5.3 Too many recipients")
	}

	if domain != sess.server.config.manifest.Domain {
		switch {
		case sess.kind == privateKind && sess.authenticated:
			// An authenticated user of the private listener may relay.
			sess.tx.recipients = append(sess.tx.recipients, local+"@"+domain)
			return sess.write("250 2.1.5 Recipient OK")
		case sess.has(relayAnything) || sess.server.routed(domain):
			// Mail from a public connection leaves only by a configured
			// route, unless the fault relayAnything is on.
			sess.tx.recipients = append(sess.tx.recipients, local+"@"+domain)
			return sess.write("250 2.1.5 Recipient OK")
		case sess.kind == publicKind && sess.has(acceptRelayDrop):
			sess.tx.discarded++
			return sess.write("250 2.1.5 Recipient OK")
		case sess.has(relayTempFail):
			return sess.write("451 4.7.1 Relaying is not possible now, try again later")
		case sess.has(relayDenied554):
			return sess.write("554 5.7.1 Relaying not permitted")
		}
		return sess.write("550 5.7.1 Relaying not permitted")
	}
	if !slices.Contains(localMailboxes, local) {
		return sess.write("550 5.1.1 No such mailbox")
	}
	sess.tx.recipients = append(sess.tx.recipients, local)
	return sess.write("250 2.1.5 Recipient OK")
}

// rset runs RSET. afterMessage is true when the command before it
// delivered a message.
func (sess *session) rset(afterMessage bool) error {
	if sess.has(rsetWithoutRecipientRejected) && sess.tx.hasSender && len(sess.tx.recipients) == 0 {
		return sess.syntaxError("503 5.5.1 No recipients to reset")
	}
	if sess.has(rsetKeepsRecipients) {
		sess.tx = transaction{recipients: sess.tx.recipients}
	} else {
		sess.tx = transaction{}
	}
	if sess.has(extraReplyToRSET) && afterMessage {
		return sess.write("250 2.0.0 Delivery finished", "250 2.0.0 Reset")
	}
	return sess.write("250 2.0.0 Reset")
}

// vrfy runs VRFY, which verifies no address.
func (sess *session) vrfy(arg string) error {
	switch {
	case arg == "":
		return sess.syntaxError("501 5.5.4 Syntax: VRFY address")
	case sess.has(vrfyAlways250):
		return sess.write("250 2.1.5 <" + strings.Trim(arg, "<>") + ">")
	case sess.has(vrfyRejects550):
		return sess.write("550 5.1.1 Mailbox unavailable")
	}
	return sess.write("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery")
}

// auth runs AUTH PLAIN on the private listener. The user must equal the
// CN of the client certificate (draft section 7).
func (sess *session) auth(arg string) error {
	switch {
	case sess.kind != privateKind:
		return sess.syntaxError("503 5.5.1 AUTH is offered on the private listener only")
	case sess.authenticated:
		return sess.syntaxError("503 5.5.1 Already authenticated")
	case sess.tx.hasSender:
		return sess.syntaxError("503 5.5.1 AUTH is not allowed in a transaction")
	}
	mechanism, initial, _ := strings.Cut(strings.TrimSpace(arg), " ")
	if !strings.EqualFold(mechanism, "PLAIN") {
		return sess.write("504 5.5.4 Unrecognized authentication type")
	}
	if initial == "" {
		if err := sess.write("334 "); err != nil {
			return err
		}
		line, err := sess.readCommand()
		if err != nil {
			return sess.syntaxError("501 5.5.2 Invalid AUTH response")
		}
		if line == "*" {
			return sess.write("501 5.0.0 AUTH canceled")
		}
		initial = line
	}

	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(initial))
	if err != nil {
		return sess.syntaxError("501 5.5.2 Invalid base64 in AUTH PLAIN")
	}
	parts := strings.Split(string(decoded), "\x00")
	if len(parts) != 3 {
		return sess.syntaxError("501 5.5.2 AUTH PLAIN needs authzid NUL user NUL password")
	}
	user, password := parts[1], parts[2]

	known := slices.ContainsFunc(sess.server.config.manifest.Users, func(u pki.User) bool {
		return u.Name == user && u.Password == password
	})
	switch {
	case !known && sess.has(wrongAuthFailureCode):
		return sess.write("454 4.7.0 Temporary authentication failure")
	case !known:
		return sess.write("535 5.7.8 Authentication credentials invalid")
	case !strings.EqualFold(user, sess.cn) && !sess.has(authIgnoresCN):
		sess.server.config.logf("breakable server: AUTH as %s rejected: the certificate CN is %s", user, sess.cn)
		return sess.write("535 5.7.8 Authentication credentials invalid")
	}
	sess.authenticated = true
	return sess.write("235 2.7.0 Authentication successful")
}

// mailData is the content of a DATA command after the end of data.
type mailData struct {
	// lines are the lines with their line endings, the doubled dots removed.
	lines [][]byte
	size  int
	// Problems found while reading. The reply names the first of them.
	bareEnding, tooLong, tooBig bool
}

// data runs DATA: it reads the message, checks it and delivers it.
func (sess *session) data() error {
	needRecipients := !sess.has(dataWithoutRecipients)
	if !sess.tx.hasSender || (needRecipients && !sess.tx.hasRecipients()) {
		if sess.has(dataErrorEndsTransaction) {
			sess.tx = transaction{}
		}
		return sess.syntaxError("503 5.5.1 Send MAIL and RCPT first")
	}
	if err := sess.write("354 Start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return err
	}
	message, err := sess.readData()
	if err != nil {
		return err
	}
	tx := sess.tx
	sess.tx = transaction{}

	switch {
	case message.bareEnding && !sess.has(acceptBareLF):
		return sess.write("500 5.5.2 Bare CR or LF in the message; end lines with CRLF")
	case message.tooLong:
		return sess.write("500 5.5.2 Line too long")
	case message.tooBig:
		return sess.write("552 5.3.4 Message too big")
	case !tx.hasRecipients():
		return sess.write("554 5.5.1 No valid recipients")
	case sess.hasMPCHeader(message.lines):
		return sess.write("550 5.7.1 The message already has an MPC header field")
	}

	if err := sess.deliver(tx, message); err != nil {
		sess.server.config.logf("breakable server: delivery failed: %v", err)
		return sess.write("451 4.3.0 Delivery failed, try again later")
	}
	if slices.ContainsFunc(tx.recipients, func(r string) bool { return strings.Contains(r, "@") }) {
		hostname := sess.hostname()
		sess.server.wg.Go(func() { sess.server.relay(hostname, tx, message) })
	}
	sess.afterMessage = true
	return sess.write("250 2.0.0 Message accepted")
}

// readData reads mail data up to the end of data, which is CRLF "." CRLF
// unless a fault changes it, and removes the doubled leading dots (RFC
// 5321 section 4.5.2).
func (sess *session) readData() (mailData, error) {
	var message mailData
	sizeLimit := maxMessageSize
	if sess.has(smallMessageLimit) {
		sizeLimit = smallMessageMax
	}
	read := 0
	// previousCRLF is true when the line before ended in CRLF, as the DATA
	// command line did.
	previousCRLF := true
	for {
		line, err := sess.readLine()
		if err != nil {
			return message, err
		}
		read += len(line)
		if read > maxDataRead {
			return message, fmt.Errorf("mail data grew past %d octets", maxDataRead)
		}
		crlf := bytes.HasSuffix(line, []byte("\r\n"))
		text := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))

		switch {
		case string(text) == "." && crlf && previousCRLF:
			return message, nil
		case string(text) == "." && sess.has(bareLFEndsData):
			return message, nil
		case strings.TrimSpace(string(text)) == "." && crlf && previousCRLF && sess.has(trimmedDotEndsData):
			return message, nil
		}
		previousCRLF = crlf
		if !crlf || bytes.ContainsAny(text, "\r\n") {
			message.bareEnding = true
		}

		if sess.has(limitBeforeUnstuffing) && len(line) > maxTextLine {
			message.tooLong = true
		}
		if bytes.HasPrefix(line, []byte(".")) && !sess.has(noDotUnstuffing) {
			line = line[1:]
		}
		if len(line) > maxTextLine {
			message.tooLong = true
		}
		message.size += len(line)
		if message.size > sizeLimit {
			message.tooBig = true
			continue
		}
		message.lines = append(message.lines, line)
	}
}

// maxHeaderSearch is how many header fields the fault shallowHeaderSearch
// looks at.
const maxHeaderSearch = 20

// hasMPCHeader reports whether the header section has an MPC header
// field (draft section 4.4.4). The field name is matched without regard to
// case, also with white space before the colon.
func (sess *session) hasMPCHeader(lines [][]byte) bool {
	if sess.has(keepExistingMPCHeader) {
		return false
	}
	fields := 0
	for _, line := range lines {
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			return false
		}
		if text[0] == ' ' || text[0] == '\t' {
			continue
		}
		fields++
		if sess.has(shallowHeaderSearch) && fields > maxHeaderSearch {
			return false
		}
		name, value, found := bytes.Cut(text, []byte(":"))
		if !found {
			continue
		}
		if !sess.has(missSpaceBeforeColon) {
			name = bytes.TrimRight(name, " \t")
		}
		matches := strings.EqualFold(string(name), "MPC")
		if sess.has(caseSensitiveHeaderSearch) {
			matches = string(name) == "MPC"
		}
		if sess.has(missFoldedMPCHeader) && len(bytes.TrimSpace(value)) == 0 {
			matches = false
		}
		if matches {
			return true
		}
	}
	return false
}

// deliver writes one copy of the message into the Maildir of each local
// recipient, with an MPC header field first. Copies for domains that are
// not local are left to relay: rcpt accepts them on the private listener,
// and on the public one for the configured routes or with the fault
// relayAnything.
func (sess *session) deliver(tx transaction, message mailData) error {
	var content bytes.Buffer
	role, _, _ := strings.Cut(tx.mpc, "/")
	insert := tx.mpc != "" && !sess.has(noMPCHeader) && !(sess.has(noMPCHeaderForMPCRole) && strings.EqualFold(role, "mpc"))
	if insert {
		value := tx.mpc
		if sess.has(rewriteMPCHeader) {
			value = strings.ToLower(value)
		}
		content.WriteString("MPC: " + value + "\r\n")
	}
	for _, line := range message.lines {
		content.Write(line)
	}

	var mailboxes []string
	for _, recipient := range tx.recipients {
		if !strings.Contains(recipient, "@") && !slices.Contains(mailboxes, recipient) {
			mailboxes = append(mailboxes, recipient)
		}
	}
	for _, mailbox := range mailboxes {
		if err := sess.server.writeMaildir(mailbox, content.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// writeMaildir stores data as a new message of mailbox: it writes the file
// into tmp and renames it into new, so a reader never sees half a file.
func (s *breakableServer) writeMaildir(mailbox string, data []byte) error {
	root := filepath.Join(s.config.maildir, mailbox)
	for _, dir := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.deliveries++
	name := fmt.Sprintf("%d.%d_%d.breakable", time.Now().UnixNano(), os.Getpid(), s.deliveries)
	s.mu.Unlock()

	tmp := filepath.Join(root, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(root, "new", name))
}
