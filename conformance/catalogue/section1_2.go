package catalogue

// Clauses of draft-weinman-amtp-03 section 1.2, Terminology.
//
// The definitions also state in lower case that an MTA, an MUA and a
// transaction partner "may" act as client or server. Those sentences define
// the terms and bind no party, so they have no entries.
var section1_2 = []Clause{
	{
		ID:      "1.2-public-ca-not-private-ca",
		Section: "1.2",
		Title:   "A publicly trusted CA is not trusted as a private CA",
		Level:   MustNot,
		Role:    RoleServer,
		Text:    "A CA that is trusted outside of the private network MUST NOT be trusted as a private CA.",
		Source:  SourceDraft,
		Wire:    "On the private listener, present a client certificate signed by the public CA from a source address without a PTR record; the server must not grant the private-connection exemption from the PTR check, so the TLS handshake must fail or EHLO must get 504.",
		Notes:   "The sentence binds whoever configures CA trust, normally the operator; the suite checks its effect on the server. amtpd refuses to start when one CA is configured for both listeners (docs/amtpd.example.toml).",
	},
}
