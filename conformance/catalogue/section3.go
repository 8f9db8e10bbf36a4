package catalogue

// Clauses of draft-weinman-amtp-03 section 3, The AMTP Model.
//
// Section 3.1 also states in lower case that "the server may refuse
// connections from those it deems non-compliant", which describes what
// authentication makes possible. Section 3.2 states that "a server MTA may
// advertise MPC values", which section 4.4.2 grants as a MAY. Neither has
// an entry here.
var section3 = []Clause{
	{
		ID:      "3.1-server-presents-certificate",
		Section: "3.1",
		Title:   "Server presents a valid certificate",
		Level:   Must,
		Role:    RoleServer,
		Text:    "Both client and server MUST present valid X.509 certificates [RFC3280], each signed by a trusted Certificate Authority (CA), in order to begin a transaction.",
		Source:  SourceDraft,
		Wire:    "Complete the TLS handshake on the public listener; the server must present a certificate chain that verifies against the CA the suite is configured to trust.",
	},
	{
		ID:      "3.1-client-certificate-required",
		Section: "3.1",
		Title:   "No transaction without a client certificate",
		Level:   Must,
		Role:    RoleServer,
		Text:    "Both client and server MUST present valid X.509 certificates [RFC3280], each signed by a trusted Certificate Authority (CA), in order to begin a transaction.",
		Source:  SourceDraft,
		Wire:    "Connect without a client certificate; the TLS handshake must fail, or the server must accept no MAIL command in that session.",
		Notes:   "The sentence binds both parties; this entry checks that the server begins no transaction with a client that presents no certificate. docs/interpretations.md item 6: amtpd fails the handshake.",
	},
	{
		ID:      "3.1-client-presents-certificate",
		Section: "3.1",
		Title:   "Relaying server presents a client certificate",
		Level:   Must,
		Role:    RoleClient,
		Text:    "Both client and server MUST present valid X.509 certificates [RFC3280], each signed by a trusted Certificate Authority (CA), in order to begin a transaction.",
		Source:  SourceDraft,
		Wire:    "When the server under test relays a message to the suite's AMTP sink, it must present a client certificate in the TLS handshake that chains to a CA the sink trusts.",
	},
}
