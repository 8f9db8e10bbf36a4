package catalogue

// Clauses of draft-weinman-amtp-03 section 4.1, Connection Requirements.
var section4_1 = []Clause{
	{
		ID:      "4.1-private-alternative-port",
		Section: "4.1",
		Title:   "Private connections may use a user port",
		Level:   May,
		Role:    RoleServer,
		Text:    "An alternative user port number outside of the 0-1024 system port range MAY be used for a private network connection (Section 7).",
		Source:  SourceDraft,
		Wire:    "Record whether the private listener named in the suite configuration uses a port other than the AMTP port, and whether that port is above 1024.",
		Notes:   "The IANA system port range is 0-1023 (RFC 6335), one less than the draft's 0-1024. Section 7 grants the same permission for any port other than the AMTP port, without the range.",
	},
	{
		ID:      "4.1-no-public-on-alternative-port",
		Section: "4.1",
		Title:   "No public connections on an alternative port",
		Level:   MustNot,
		Role:    RoleServer,
		Text:    "A server MTA MUST NOT accept public network connections on any alternative port number.",
		Source:  SourceDraft,
		Wire:    "On the private listener's port, present a client certificate signed by the public CA from an address with a matching PTR record; the TLS handshake must fail or EHLO must get 504, so no transaction begins.",
		Notes:   "A connection is public when its client certificate is not signed by a private CA (section 1.2). docs/interpretations.md (Port): the amtpd private listener accepts only certificates from the private CAs.",
	},
}
