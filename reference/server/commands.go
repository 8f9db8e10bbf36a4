package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/reference/identity"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/router"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// dispatch runs one command. It returns errCloseSession when the session
// must end after the reply it sent, or the error of a failed write.
func (s *session) dispatch(cmd smtp.Command) error {
	// Before EHLO only EHLO, NOOP and QUIT are allowed (section 4.4.2:
	// a client must start a session with EHLO), and HELO always gets 504
	// (section 4.4.1).
	switch cmd.Verb {
	case "EHLO":
		return s.cmdEHLO(cmd.Arg)
	case "HELO":
		return s.cmdHELO()
	case "NOOP":
		return s.sendReply(replyOK)
	case "QUIT":
		return s.cmdQUIT()
	}
	if !s.greeted() {
		return s.fail(replyEHLOFirst)
	}

	switch cmd.Verb {
	case "AUTH":
		return s.cmdAUTH(cmd.Arg)
	case "MAIL":
		return s.cmdMAIL(cmd.Arg)
	case "RCPT":
		return s.cmdRCPT(cmd.Arg)
	case "DATA":
		return s.cmdDATA(cmd.Arg)
	case "RSET":
		return s.cmdRSET(cmd.Arg)
	case "VRFY":
		// RFC 5321 section 3.5.3: 252 when the server will not verify.
		return s.reply(codeCannotVerify, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "EXPN":
		return s.fail(reply{codeNotImplemented, "5.5.1", "EXPN not implemented"})
	case "HELP":
		return s.reply(codeHelp, "2.0.0", "Commands: "+strings.Join(s.commandNames(), " "))
	case "STARTTLS":
		return s.fail(reply{codeBadSequence, "5.5.1", "TLS already active"})
	case "BDAT":
		return s.fail(reply{codeNotImplemented, "5.5.1", "BDAT not implemented"})
	}
	return s.fail(replyUnknown)
}

func (s *session) commandNames() []string {
	names := []string{"EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "HELP"}
	if s.ep.users != nil {
		names = append(names, "AUTH")
	}
	return names
}

// cmdHELO implements section 4.4.1: AMTP does not support HELO, and a
// server must return 504.
func (s *session) cmdHELO() error {
	return s.fail(replyHELO)
}

// cmdEHLO implements section 4.4.2. The client's certificate, source
// address and EHLO argument are checked together (sections 4.2 and 4.3.2);
// any failure gets 504 and leaves the session unauthenticated.
func (s *session) cmdEHLO(arg string) error {
	arg = strings.TrimRight(arg, " ")
	if arg == "" || strings.Contains(arg, " ") || !(smtp.IsDomain(arg) || smtp.IsAddressLiteral(arg)) {
		return s.fail(reply{codeParamSyntaxError, "5.5.4", "Invalid EHLO argument; send EHLO with the client's domain name"})
	}

	// Each EHLO repeats the PTR lookups, so a session gets a bounded
	// number of them.
	s.ehloCount++
	if s.ehloCount > maxEHLOPerSession {
		s.log.Warn("too many EHLO commands", "count", s.ehloCount)
		s.outcome = "too_many_ehlo"
		s.sendReply(replyTooManyEHLO)
		return errCloseSession
	}

	// A new EHLO resets the session state (RFC 5321 section 4.1.4).
	s.resetTransaction()
	s.identity = nil
	s.ehlo = arg

	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.DNS.Timeout.Duration+time.Second)
	id, err := s.ep.verifier.Verify(ctx, s.conn.ConnectionState().PeerCertificates, s.remote.Addr().Unmap(), arg, s.start)
	cancel()

	if err != nil {
		var idErr *identity.Error
		if !errors.As(err, &idErr) {
			s.log.Error("identity check failed unexpectedly", "ehlo", arg, "error", err)
			return s.fail(replyAuthFailed)
		}
		attrs := []any{"check", string(idErr.Check), "addr", idErr.Addr.String(), "name", idErr.Name, "ehlo", arg, "error", idErr.Err}
		if certs := s.conn.ConnectionState().PeerCertificates; len(certs) > 0 {
			attrs = append(attrs, "issuer", certs[0].Issuer.String())
		}
		if hint := checkHint(idErr.Check, s.ep.kind); hint != "" {
			attrs = append(attrs, "hint", hint)
		}
		s.log.Warn("identity check failed", attrs...)
		if idErr.Temporary {
			s.outcome = "dns_temporary_failure"
			s.sendReply(replyDNSTempFail)
			return errCloseSession
		}
		s.outcome = "identity_rejected"
		return s.fail(replyAuthFailed)
	}

	s.identity = id
	s.outcome = "authenticated"
	s.log.Debug("identity verified", "cn", id.CN, "ptr", id.PTR)
	return s.replyLines(codeOK, s.ehloLines())
}

// checkHint returns what an operator should check after a failed identity check.
func checkHint(check identity.Check, listener string) string {
	switch check {
	case identity.CheckUntrustedCA:
		return "the issuer is not in " + listener + ".client_ca"
	case identity.CheckPrivateCA:
		return "a private-CA certificate can connect only to the [private] listener"
	case identity.CheckNoPTR, identity.CheckPTRMismatch:
		return "the PTR record of the source address must name the certificate CN; check dns.server"
	case identity.CheckEHLOMismatch:
		return "the client must send EHLO with its certificate CN"
	}
	return ""
}

// ehloLines returns the EHLO reply: the greeting, the MPC declaration line
// when a policy is configured (section 4.4.2), and the extensions that
// this server implements.
func (s *session) ehloLines() []string {
	lines := []string{s.srv.hostname + " greets " + s.identity.CN}
	if line := s.srv.policy.EHLOLine(); line != "" {
		lines = append(lines, line)
	}
	lines = append(lines,
		"PIPELINING",
		fmt.Sprintf("SIZE %d", s.srv.cfg.Limits.MaxMessageSize),
		"8BITMIME",
		"ENHANCEDSTATUSCODES",
	)
	if s.ep.users != nil {
		lines = append(lines, "AUTH PLAIN")
	}
	return lines
}

func (s *session) cmdQUIT() error {
	s.outcome = "quit"
	s.sendReply(replyBye)
	return errCloseSession
}

func (s *session) cmdRSET(arg string) error {
	if arg != "" {
		return s.fail(replyNoArgs)
	}
	s.resetTransaction()
	return s.sendReply(replyOK)
}

// cmdMAIL implements MAIL with the MPC parameter of section 4.4.3: exactly
// one MPC= parameter, with a value defined in section 4.5, allowed by the
// server-wide policy unless it is mpc/individual.
func (s *session) cmdMAIL(arg string) error {
	if s.ep.users != nil && s.authUser == "" {
		// Section 7: a private network connection should add user
		// authentication; this server requires it.
		return s.fail(replyAuthRequired)
	}
	if s.tx != nil {
		return s.fail(replyNestedMail)
	}

	from, params, err := smtp.ParseMail(arg)
	if err != nil {
		s.log.Info("MAIL rejected: syntax error", "error", err)
		return s.fail(pathErrorReply(err, "5.1.7", "sender"))
	}

	var (
		mpcValues []smtp.Param
		size      int64 = -1
		seen            = map[string]bool{}
	)
	for _, p := range params {
		// RFC 5321 section 4.1.2 lets a parameter keyword appear once at
		// most; MPC has its own reply below (section 4.4.3).
		if seen[p.Keyword] && p.Keyword != "MPC" {
			return s.fail(reply{codeParamSyntaxError, "5.5.4", "Parameter " + p.Keyword + " given more than once; send it once"})
		}
		seen[p.Keyword] = true

		switch p.Keyword {
		case "MPC":
			mpcValues = append(mpcValues, p)
		case "SIZE":
			n, ok := parseSize(p)
			if !ok {
				return s.fail(reply{codeParamSyntaxError, "5.5.4", "Invalid SIZE value"})
			}
			size = n
		case "BODY":
			if !p.HasValue || !(strings.EqualFold(p.Value, "7BIT") || strings.EqualFold(p.Value, "8BITMIME")) {
				return s.fail(reply{codeParamSyntaxError, "5.5.4", "Invalid BODY value; use 7BIT or 8BITMIME"})
			}
		case "AUTH":
			// RFC 4954 section 5: accepted and not propagated.
			if s.ep.users == nil {
				return s.fail(unknownParamReply(p.Keyword))
			}
		default:
			return s.fail(unknownParamReply(p.Keyword))
		}
	}

	// Section 4.4.3: the client must provide exactly one MPC parameter.
	switch {
	case len(mpcValues) == 0:
		s.log.Info("MAIL rejected: no MPC parameter", "from", from)
		return s.fail(replyMPCMissing)
	case len(mpcValues) > 1:
		s.log.Info("MAIL rejected: more than one MPC parameter", "from", from, "count", len(mpcValues))
		return s.fail(replyMPCTwice)
	case !mpcValues[0].HasValue:
		return s.fail(replyMPCSyntax)
	}

	// Section 4.5: a server must not accept a message whose MPC value has
	// a component not defined there.
	value, err := mpc.Parse(mpcValues[0].Value)
	if errors.Is(err, mpc.ErrSyntax) {
		s.log.Info("MAIL rejected: MPC syntax error", "from", from, "error", err)
		return s.fail(replyMPCSyntax)
	}
	if err != nil {
		s.log.Info("MAIL rejected: undefined MPC value", "from", from, "error", err)
		return s.sendReply(replyMPCPolicy)
	}

	if size > s.srv.cfg.Limits.MaxMessageSize {
		return s.reply(codeExceededStorage, "5.3.4", fmt.Sprintf("Message size exceeds the maximum of %d octets", s.srv.cfg.Limits.MaxMessageSize))
	}

	// Sections 4.4.2 and 4.4.3: the server-wide policy, evaluated in
	// order. Section 4.5: mpc/individual is always accepted.
	if !value.IsIndividualMPC() && s.srv.policy.Evaluate(value) != mpc.Allow {
		s.log.Info("MAIL rejected by MPC policy", "from", from, "mpc", value.String(), "policy", s.srv.policy.String())
		return s.sendReply(replyMPCPolicy)
	}

	s.tx = &transaction{from: from, mpc: value, seen: map[string]bool{}}
	return s.reply(codeOK, "2.1.0", "Sender OK")
}

// cmdRCPT implements RCPT with the per-recipient MPC policies that section
// 4.4.3 allows after a particular RCPT command.
func (s *session) cmdRCPT(arg string) error {
	if s.tx == nil {
		return s.fail(replyNeedMail)
	}
	s.tx.attempts++

	rcpt, params, err := smtp.ParseRcpt(arg)
	if err != nil {
		s.log.Info("RCPT rejected: syntax error", "error", err)
		return s.fail(pathErrorReply(err, "5.1.3", "recipient"))
	}
	if len(params) > 0 {
		return s.fail(unknownParamReply(params[0].Keyword))
	}
	if len(s.tx.recipients) >= s.srv.cfg.Limits.MaxRecipients {
		return s.sendReply(replyTooManyRcpts)
	}

	if strings.EqualFold(rcpt, "postmaster") {
		// RFC 5321 section 4.1.1.3: <Postmaster> without a domain.
		rcpt = "postmaster@" + s.srv.cfg.Domains[0].Name
	}
	at := strings.LastIndexByte(rcpt, '@')
	local, domain := strings.ToLower(rcpt[:at]), strings.ToLower(rcpt[at+1:])

	if rule, isLocal := s.srv.domains[domain]; isLocal {
		if checker, ok := s.srv.deliverer.(recipientChecker); ok {
			if err := checker.CheckRecipient(rcpt); err != nil {
				s.log.Info("RCPT rejected: mailbox name not allowed", "rcpt", rcpt, "error", err)
				return s.fail(replyBadMailbox)
			}
		}
		if len(rule.mailboxes) > 0 && !rule.mailboxes[local] && local != "postmaster" {
			s.log.Info("RCPT rejected: no such mailbox", "rcpt", rcpt)
			return s.fail(replyNoMailbox)
		}
	} else {
		// Section 5.1: a message from a public network connection is never
		// relayed over another one. Only a private route may carry it on,
		// and the check is made here so the client learns it at RCPT.
		origin := router.FromPublic
		if s.ep.kind == kindPrivate {
			origin = router.FromPrivate
		}
		route, err := s.srv.router.Lookup(domain, origin)
		if err != nil {
			s.log.Info("RCPT rejected: relay not permitted", "rcpt", rcpt, "error", err)
			return s.fail(replyRelayDenied)
		}
		s.log.Debug("RCPT to a remote domain", "rcpt", rcpt, "route", string(route.Kind))
	}

	if !s.tx.mpc.IsIndividualMPC() {
		if policy, match, ok := s.srv.recipientPolicy(local, domain); ok {
			switch policy.Evaluate(s.tx.mpc) {
			case mpc.Deny:
				s.log.Info("RCPT rejected by MPC policy", "rcpt", rcpt, "mpc", s.tx.mpc.String(), "match", match, "policy", policy.String())
				return s.sendReply(replyMPCPolicy)
			case mpc.Defer:
				s.log.Info("RCPT deferred by MPC policy", "rcpt", rcpt, "mpc", s.tx.mpc.String(), "match", match, "policy", policy.String())
				return s.sendReply(replyMPCTempFail)
			}
		}
	}

	key := local + "@" + domain
	if !s.tx.seen[key] {
		s.tx.seen[key] = true
		s.tx.recipients = append(s.tx.recipients, rcpt)
	}
	return s.reply(codeOK, "2.1.5", "Recipient OK")
}

// recipientChecker is implemented by deliverers that can tell at RCPT time
// that they cannot store mail for an address.
type recipientChecker interface {
	CheckRecipient(rcpt string) error
}

// recipientPolicy returns the policy for a recipient: the rule for the full
// address if there is one, else the rule for its domain.
func (srv *Server) recipientPolicy(local, domain string) (mpc.Policy, string, bool) {
	address := local + "@" + domain
	for _, r := range srv.rcptRules {
		if r.match == address {
			return r.policy, r.match, true
		}
	}
	for _, r := range srv.rcptRules {
		if r.match == "@"+domain {
			return r.policy, r.match, true
		}
	}
	return nil, "", false
}

// pathErrorReply maps an address parsing error of MAIL or RCPT to a reply
// that names the problem, with the client's text cut short and reduced
// to printable ASCII.
func pathErrorReply(err error, enhanced, what string) reply {
	detail := printable(err.Error(), 120)
	switch {
	case errors.Is(err, smtp.ErrPathTooLong):
		return reply{codeParamSyntaxError, enhanced, "Path too long: " + detail}
	case errors.Is(err, smtp.ErrParamSyntax):
		detail = strings.TrimPrefix(detail, smtp.ErrParamSyntax.Error()+": ")
		return reply{codeParamSyntaxError, "5.5.4", "Invalid parameter syntax: " + detail}
	case errors.Is(err, smtp.ErrNonASCIIPath):
		return reply{codeMailboxNotAllowed, "5.6.7", "Non-ASCII addresses are not supported"}
	}
	return reply{codeParamSyntaxError, enhanced, "Invalid " + what + " address syntax: " + detail}
}

// printable returns s with every octet outside printable ASCII replaced by
// "?", cut to at most max octets, for echoing client text in a reply.
func printable(s string, max int) string {
	b := []byte(s)
	if len(b) > max {
		b = append(b[:max], "..."...)
	}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func unknownParamReply(keyword string) reply {
	return reply{codeParamsUnknown, "5.5.4", fmt.Sprintf("Parameter %s not recognized", keyword)}
}

func parseSize(p smtp.Param) (int64, bool) {
	if !p.HasValue || len(p.Value) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(p.Value); i++ {
		c := p.Value[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// clientIP returns the client's address without an IPv4-mapped prefix.
func (s *session) clientIP() netip.Addr {
	return s.remote.Addr().Unmap()
}
