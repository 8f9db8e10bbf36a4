package server

// Reply codes of RFC 5321 section 4.2.3, RFC 4954 (AUTH) and
// draft-weinman-amtp-03 (504 for HELO and failed identity checks, 451 and
// 550 for MPC policy).
const (
	codeHelp               = 214
	codeReady              = 220
	codeClosing            = 221
	codeAuthSucceeded      = 235
	codeOK                 = 250
	codeCannotVerify       = 252
	codeAuthContinue       = 334
	codeStartMailInput     = 354
	codeServiceUnavailable = 421
	codeLocalError         = 451
	codeInsufficientSpace  = 452
	codeSyntaxError        = 500
	codeParamSyntaxError   = 501
	codeNotImplemented     = 502
	codeBadSequence        = 503
	codeParamNotImpl       = 504
	codeAuthRequired       = 530
	codeAuthFailed         = 535
	codeMailboxUnavailable = 550
	codeExceededStorage    = 552
	codeMailboxNotAllowed  = 553
	codeTransactionFailed  = 554
	codeParamsUnknown      = 555
)

// reply is one single-line reply: a code, an enhanced status code
// (RFC 3463; empty for the greeting) and a text.
type reply struct {
	code     int
	enhanced string
	text     string
}

// maxEHLOPerSession bounds the EHLO commands of one session, each of
// which repeats the identity checks and their DNS lookups.
const maxEHLOPerSession = 10

// Fixed replies. Texts are short and neutral: the log, not the reply,
// tells an operator which check failed.
var (
	replyHELO          = reply{codeParamNotImpl, "5.5.1", "HELO is not supported; use EHLO"}
	replyAuthFailed    = reply{codeParamNotImpl, "5.7.0", "Authentication failed"}
	replyDNSTempFail   = reply{codeServiceUnavailable, "4.4.3", "Temporary DNS failure; try again later"}
	replyEHLOFirst     = reply{codeBadSequence, "5.5.1", "Send EHLO first"}
	replyNestedMail    = reply{codeBadSequence, "5.5.1", "Nested MAIL command"}
	replyNeedMail      = reply{codeBadSequence, "5.5.1", "Send MAIL first"}
	replyNeedRcpt      = reply{codeBadSequence, "5.5.1", "Send RCPT first"}
	replyAuthRequired  = reply{codeAuthRequired, "5.7.0", "Authentication required"}
	replyMPCPolicy     = reply{codeMailboxUnavailable, "5.7.1", "MPC policy violation"}
	replyMPCTempFail   = reply{codeLocalError, "4.7.1", "MPC temporary failure, try again later"}
	replyMPCMissing    = reply{codeParamSyntaxError, "5.5.4", "MPC parameter required"}
	replyMPCTwice      = reply{codeParamSyntaxError, "5.5.4", "Exactly one MPC parameter allowed"}
	replyMPCSyntax     = reply{codeParamSyntaxError, "5.5.4", "Invalid MPC value; use role/class, for example per/individual"}
	replyMPCHeader     = reply{codeMailboxUnavailable, "5.7.1", "Message already contains an MPC header field"}
	replyRelayDenied   = reply{codeMailboxUnavailable, "5.7.1", "Relaying not permitted"}
	replyNoMailbox     = reply{codeMailboxUnavailable, "5.1.1", "Mailbox unavailable"}
	replyBadMailbox    = reply{codeMailboxNotAllowed, "5.1.3", "Mailbox name not allowed"}
	replyTooManyRcpts  = reply{codeInsufficientSpace, "4.5.3", "Too many recipients"}
	replyLineTooLong   = reply{codeSyntaxError, "5.5.2", "Line too long"}
	replyBareLF        = reply{codeSyntaxError, "5.5.2", "Lines must end with CRLF"}
	replyUnknown       = reply{codeSyntaxError, "5.5.1", "Command unrecognized"}
	replyNoArgs        = reply{codeParamSyntaxError, "5.5.4", "This command takes no arguments"}
	replyTooManyErrors = reply{codeServiceUnavailable, "4.7.0", "Too many errors; closing connection"}
	replyTooManyEHLO   = reply{codeServiceUnavailable, "4.7.0", "Too many EHLO commands; closing connection"}
	replyTimeout       = reply{codeServiceUnavailable, "4.4.2", "Timeout; closing connection"}
	replyShutdown      = reply{codeServiceUnavailable, "4.3.2", "Service shutting down"}
	replyTooManyConns  = reply{codeServiceUnavailable, "4.7.0", "Too many connections; try again later"}
	replyLocalError    = reply{codeLocalError, "4.3.0", "Local error in processing; try again later"}
	replyOK            = reply{codeOK, "2.0.0", "OK"}
	replyBye           = reply{codeClosing, "2.0.0", "Bye"}
)
