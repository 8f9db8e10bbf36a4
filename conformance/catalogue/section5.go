package catalogue

// Clauses of draft-weinman-amtp-03 section 5, MTA Requirements, with 5.1,
// Unauthorized Relay Prevention, and 5.2, Rewriting MPC Values.
//
// "An MTA" and "every MTA" are checked on the server under test.
var section5 = []Clause{
	{
		ID:         "5-common-operating-practices",
		Section:    "5",
		Title:      "MTAs follow common practices on public connections",
		Level:      Must,
		Role:       RoleServer,
		Text:       "When exchanging mail over a public network connection, every MTA MUST conform to a common set of operating practices for the purpose of preserving the security of the public email infrastructure.",
		Source:     SourceDraft,
		Untestable: "The sentence introduces the practices of sections 5.1 and 5.2 and has no observation of its own.",
	},
	{
		ID:      "5.1-no-public-to-public-relay",
		Section: "5.1",
		Title:   "No relay from a public connection to a public connection",
		Level:   MustNot,
		Role:    RoleServer,
		Text:    "Each message transmitted using AMTP over a public network connection MUST NOT be relayed over another public network connection.",
		Source:  SourceDraft,
		Wire:    "Over a public connection, send RCPT for a domain that is not local to the server under test and whose SRV record points at the suite's AMTP sink; the RCPT must be rejected (550 expected), or else the sink must receive nothing over a public connection.",
		Notes:   "docs/interpretations.md (Relay): amtpd answers 550 5.7.1 at RCPT time.",
	},
	{
		ID:      "5.1-relay-over-private-connections",
		Section: "5.1",
		Title:   "Relay hops after a public connection are private",
		Level:   Must,
		Role:    RoleServer,
		Text:    "Relay deliveries to end users or intermediate mail servers MUST use private network connections.",
		Source:  SourceDraft,
		Wire:    "When a message that reached the server under test over a public connection is relayed to the suite's AMTP sink, the server must present a client certificate signed by a private CA that the sink trusts.",
		Notes:   "Read as applying to messages that arrived over a public connection, the subject of the sentence before it. Read alone, it would make every relay hop private, including the public hop that section 4.3.1 locates by SRV and section 7 forbids locating by SRV when private.",
	},
	{
		ID:      "5.2-no-rewrite",
		Section: "5.2",
		Title:   "Relayed MPC value is not rewritten",
		Level:   MustNot,
		Role:    RoleServer,
		Text:    "An MTA MUST NOT rewrite MPC values.",
		Source:  SourceDraft,
		Wire:    "Have the server under test relay a message with MPC=ngo/customer to the suite's AMTP sink; the sink's MAIL command must carry MPC=ngo/customer, octet for octet.",
	},
	{
		ID:      "5.2-unacceptable-not-delivered",
		Section: "5.2",
		Title:   "Message with an unacceptable MPC is neither relayed nor delivered",
		Level:   MustNot,
		Role:    RoleServer,
		Text:    "When an MTA determines that an MPC value is incorrect, invalid, or otherwise unacceptable, it MUST NOT relay or deliver the message.",
		Source:  SourceDraft,
		Wire:    "Send messages with an undefined MPC value and with a value that the server's EHLO declarations deny, in lower and in mixed case; whatever the server replies, the watched Maildir must receive no copy.",
		Notes:   "The sentence does not say whether a value unacceptable to one recipient makes the whole message undeliverable; the suite reads it per recipient, as section 4.4.3 allows rejecting at a particular RCPT, and sends each message to one recipient.",
	},
}
