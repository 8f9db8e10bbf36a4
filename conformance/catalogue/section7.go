package catalogue

// Clauses of draft-weinman-amtp-03 section 7, Private Network
// Considerations.
//
// The lower-case "a private network connection may be used" and the
// examples of who "may" set one up describe the purpose of private networks
// and bind no party.
var section7 = []Clause{
	{
		ID:      "7-private-ca-not-recognized-outside",
		Section: "7",
		Title:   "A private CA is not recognized outside its network",
		Level:   MustNot,
		Role:    RoleOperator,
		Text:    "A private CA is recognized by the transaction partners participating in the private network, and MUST NOT be recognized by any MTA outside of the private network.",
		Source:  SourceDraft,
		Wire:    "On each listener, present a client certificate from a private CA of another private network, one the server under test was not configured with; the TLS handshake must fail or EHLO must get 504.",
		Notes:   "The sentence binds every MTA outside the private network; the suite checks the server under test as an outsider to a foreign private network.",
	},
	{
		ID:      "7-server-certificate-any-ca",
		Section: "7",
		Title:   "Private-connection server may use a public or private CA",
		Level:   May,
		Role:    RoleServer,
		Text:    "The server in a private network connection MAY use either a public or private CA.",
		Source:  SourceDraft,
		Wire:    "Record whether the certificate the server presents on its private listener chains to the public CA or to the private CA.",
	},
	{
		ID:      "7-private-user-authentication",
		Section: "7",
		Title:   "Private connections use user authentication",
		Level:   Should,
		Role:    RoleServer,
		Text:    "A private network connection SHOULD employ user authentication in addition to the X.509 certificate used for client authentication.",
		Source:  SourceDraft,
		Wire:    "On the private listener, the EHLO reply should advertise AUTH, and a MAIL command sent without authenticating should be refused (530 expected).",
		Notes:   "docs/interpretations.md (Private listener): amtpd requires AUTH PLAIN before MAIL and answers 530 5.7.0 otherwise.",
	},
	{
		ID:      "7-certificate-subject-matches-user",
		Section: "7",
		Title:   "Private-connection user name matches the certificate",
		Level:   Should,
		Role:    RoleServer,
		Text:    "A server SHOULD require that an X.509 certificate subject match another authentication token, for example, a user name provided with RFC-2554 authentication, to help prevent abuse of its certificates.",
		Source:  SourceDraft,
		Wire:    "On the private listener, authenticate with AUTH PLAIN as a valid user whose name differs from the certificate CN; the server should refuse the authentication (535 expected) or the MAIL command after it.",
		Notes:   "docs/interpretations.md (Private listener): amtpd requires the user name to equal the certificate CN and answers 535 5.7.8 otherwise.",
	},
	{
		ID:      "7-private-alternative-port",
		Section: "7",
		Title:   "Private connections may use another port",
		Level:   May,
		Role:    RoleServer,
		Text:    "A private network connection MAY use a port number other than xxx.",
		Source:  SourceDraft,
		Wire:    "Record whether the private listener named in the suite configuration listens on a port other than the AMTP port.",
		Notes:   "Section 4.1 grants the same permission only for ports outside the 0-1024 range; the two are recorded separately.",
	},
	{
		ID:      "7-private-ptr-exemption",
		Section: "7",
		Title:   "Private connections may skip the PTR checks",
		Level:   May,
		Role:    RoleServer,
		Text:    "A server on a private network connection MAY accept a certificate subject and/or an EHLO argument without a matching DNS PTR RR.",
		Source:  SourceDraft,
		Wire:    "On the private listener, present a private-CA certificate from an address with no PTR record and send EHLO with its CN; record whether the reply is 250.",
		Notes:   "docs/amtpd.example.toml: the amtpd private listener skips the PTR checks unless require_ptr is true.",
	},
	{
		ID:      "7-client-no-srv-for-private",
		Section: "7",
		Title:   "No SRV lookup for a private next hop",
		Level:   MustNot,
		Role:    RoleClient,
		Text:    "A client MUST NOT use DNS SRV RRs to determine the address of a server for a private network connection.",
		Source:  SourceDraft,
		Wire:    "Configure the server under test to relay a domain to the suite's AMTP sink over a private network connection; the suite's DNS server must see no SRV query for that domain before the sink receives the message.",
	},
}
