package specs

import (
	"fmt"
	"strings"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// Command lines that skipRejected describes in words, because the suite
// sends no command line there.
const (
	// greetingStep marks the greeting, which the server sends before any
	// command.
	greetingStep = ""
	// endOfDataStep marks the final "." line of the mail data.
	endOfDataStep = "."
)

// skipRejected records a skip for a check whose precondition the server
// rejected: command, a step the check needs before it reaches what its
// clause is about, got reply. Such a rejection does not break the check's
// own clause, and the harness did its part, so it is neither fail nor
// error. The reason names the clause that judges the rejection, with that
// clause's verdict when it ran earlier in this run.
func (c *Check) skipRejected(command string, reply probe.Reply) {
	rejection := fmt.Sprintf("%s got %s", describeStep(command), summarize(reply))

	judge := judgingClause(command, reply)
	if judge == replyCodeRangeClause {
		// The reply itself breaks that clause, whatever its check finds.
		c.Skip("depends on %s, which this reply breaks: %s", judge, rejection)
		return
	}
	if judge == "" {
		c.Skip("the server rejected a step this check needs, and no clause of the suite judges that rejection: %s%s", rejection, rejectionHint(command))
		return
	}
	if o, ok := recorded(judge); ok {
		c.Skip("depends on %s, which got %s: %s", judge, o.Verdict, rejection)
		return
	}
	c.Skip("depends on %s, which judges this rejection and has no verdict yet in this run: %s", judge, rejection)
}

// skipRejectedTransaction is skipRejected for the step at which a mail
// transaction stopped without being accepted.
func (c *Check) skipRejectedTransaction(tx transaction) {
	c.skipRejected(tx.command, tx.reply)
}

// judgingClause returns the ID of the clause whose check judges the reply
// to command, or "" when no clause does.
func judgingClause(command string, reply probe.Reply) string {
	verb, _, _ := strings.Cut(strings.ToUpper(command), " ")
	carriesMPC := strings.Contains(strings.ToUpper(command), " MPC=")

	switch {
	case hasInvalidCode(reply):
		return replyCodeRangeClause
	case command == greetingStep:
		return "rfc5321-4.3.1-greeting-220"
	case verb == "RSET":
		return "rfc5321-4.1.1.5-rset-250"
	case verb == "NOOP":
		return "rfc5321-4.1.1.9-noop-250"
	case verb == "MAIL" && strings.Contains(strings.ToUpper(command), " MPC=MPC/INDIVIDUAL"):
		return "4.5-mpc-individual-accepted"
	case verb == "MAIL" && carriesMPC && !resultCodeAllowed("MAIL", reply.Code):
		// The sweep of 4.4.3-mpc-result-codes sends every defined value,
		// so it meets the same reply.
		return "4.4.3-mpc-result-codes"
	case verb == "RCPT" && !resultCodeAllowed("RCPT", reply.Code):
		// NOTE: every RCPT of a precondition follows a MAIL command with an
		// MPC parameter, and the sweep repeats that pair with the same
		// recipient. A RCPT after MAIL without MPC would get the wrong judge.
		return "4.4.3-mpc-result-codes"
	}
	return ""
}

// rejectionHint returns what the user can change when no clause judges the
// rejection of command, with a leading "; ", or "".
func rejectionHint(command string) string {
	verb, _, _ := strings.Cut(strings.ToUpper(command), " ")
	switch verb {
	case "MAIL", "RCPT":
		return fmt.Sprintf("; the check needs a message to %s accepted, which --recipient can change", current().Recipient)
	case "AUTH":
		return "; the check needs the PKI's first SMTP AUTH user configured on the server"
	}
	return ""
}

// describeStep returns a command line for a reason, with words for the
// greeting and the end of data and the length of a long line.
func describeStep(command string) string {
	switch command {
	case greetingStep:
		return "the greeting"
	case endOfDataStep:
		return "the end of data"
	}
	if len(command) > 100 {
		return verbOf(command)
	}
	return command
}

// readGreeting reads the greeting of a session that the check dialed
// itself. It returns false after it records an error when no greeting
// arrives, or a skip when the greeting is not 220.
func (c *Check) readGreeting(s *Session) bool {
	greeting, err := s.Read()
	if err != nil {
		c.Error("no greeting: %s", describe(err))
		return false
	}
	if greeting.Code != 220 {
		c.skipRejected(greetingStep, greeting)
		return false
	}
	return true
}

// startTransaction sends MAIL with MPC=per/individual, the value of every
// message that the suite needs accepted. It returns false after it
// records an error when no reply arrives, or a skip when the reply is not
// 250.
func (c *Check) startTransaction(s *Session) bool {
	line := mailCommand("MPC=per/individual")
	reply, err := s.Cmd(line)
	if err != nil {
		c.Error("no reply to MAIL: %s", describe(err))
		return false
	}
	if reply.Code != 250 {
		c.skipRejected(line, reply)
		return false
	}
	return true
}
