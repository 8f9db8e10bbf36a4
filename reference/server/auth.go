package server

import (
	"strings"

	"github.com/amtp-toolkit/amtp/reference/auth"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

// cmdAUTH implements SMTP AUTH PLAIN (RFC 4954, RFC 4616) on the private
// listener. Section 7 states that a server SHOULD require that the certificate
// subject match another authentication token, so the authenticated user
// name must equal the CN of the client certificate.
func (s *session) cmdAUTH(arg string) error {
	switch {
	case s.ep.users == nil:
		return s.fail(reply{codeNotImplemented, "5.5.1", "AUTH not available on this listener"})
	case s.authUser != "":
		return s.fail(reply{codeBadSequence, "5.5.1", "Already authenticated"})
	case s.tx != nil:
		return s.fail(reply{codeBadSequence, "5.5.1", "AUTH not allowed during a mail transaction"})
	}

	mechanism, initial, hasInitial := strings.Cut(arg, " ")
	if mechanism == "" {
		return s.fail(reply{codeParamSyntaxError, "5.5.4", "AUTH requires a mechanism; use AUTH PLAIN"})
	}
	if !strings.EqualFold(mechanism, "PLAIN") {
		return s.fail(reply{codeParamNotImpl, "5.5.4", "Unrecognized authentication mechanism; use PLAIN"})
	}

	response := initial
	if !hasInitial {
		if err := s.reply(codeAuthContinue, "", ""); err != nil {
			return err
		}
		line, err := smtp.ReadCommandLine(s.r)
		if err != nil {
			if isRecoverableLineError(err) {
				return s.fail(lineErrorReply(err))
			}
			s.handleReadError(err)
			return errCloseSession
		}
		response = line
	}
	if response == "*" {
		return s.fail(reply{codeParamSyntaxError, "5.0.0", "Authentication canceled"})
	}
	if response == "=" {
		response = ""
	}

	authzid, user, password, err := auth.DecodePlain(response)
	if err != nil {
		s.log.Info("AUTH rejected: malformed response", "error", err)
		return s.fail(reply{codeParamSyntaxError, "5.5.2", "Malformed AUTH PLAIN response"})
	}

	switch {
	case authzid != "" && !strings.EqualFold(authzid, user):
		s.log.Warn("AUTH rejected: authorization identity differs from the user", "user", user, "authzid", authzid)
	case !s.ep.users.Authenticate(user, password):
		s.log.Warn("AUTH rejected: invalid credentials", "user", user)
	case !strings.EqualFold(user, s.identity.CN):
		s.log.Warn("AUTH rejected: user does not match the certificate CN", "user", user, "cn", s.identity.CN)
	default:
		s.authUser = user
		s.log.Info("AUTH succeeded", "user", user)
		return s.reply(codeAuthSucceeded, "2.7.0", "Authentication successful")
	}
	return s.fail(reply{codeAuthFailed, "5.7.8", "Authentication credentials invalid"})
}
