package catalogue

// Clauses of draft-weinman-amtp-03 sections 4.3.1, SRV RRs, and 4.3.2,
// IN-ADDR.ARPA zone (Reverse DNS). Section 4.3 limits both to public
// network connections.
//
// The SRV checks look at the DNS through the resolver the suite is
// configured with. Against the suite's own DNS fixture they check the
// fixture, not the server, so they test a deployment only when the suite
// resolves through that deployment's DNS.
var section4_3 = []Clause{
	{
		ID:      "4.3.1-client-queries-srv",
		Section: "4.3.1",
		Title:   "Relaying server looks up SRV records",
		Level:   Must,
		Role:    RoleClient,
		Text:    "When a client MTA delivers mail to a server MTA, it MUST perform a DNS query for an SRV RR using the host part of the envelope recipient address.",
		Source:  SourceDraft,
		Wire:    "Over the private listener, submit a message for a remote domain whose SRV record in the suite's DNS points at the suite's AMTP sink; the suite's DNS server must see an SRV query for _amtp._tcp.<domain>, and the sink must receive the message.",
		Notes:   "Section 7 forbids SRV lookups for private network connections, so this applies to the public hop only. The submission goes over the private listener because section 5.1 forbids relaying over a public connection a message that arrived over one.",
	},
	{
		ID:      "4.3.1-srv-procedure",
		Section: "4.3.1",
		Title:   "Next hop chosen by the RFC 2782 procedure",
		Level:   Shall,
		Role:    RoleClient,
		Text:    "The server MTA SHALL be determined according to the procedures specified in DNS SRV RR [RFC2782].",
		Source:  SourceDraft,
		Wire:    "Publish two SRV records for a remote domain, priority 10 for a port that refuses connections and priority 20 for the suite's AMTP sink; the relaying server must try the priority-10 target before it delivers to the priority-20 one.",
		Notes:   `The draft adds that "This requirement replaces the use of A or MX records in SMTP"; the suite also reports any MX query for the recipient domain.`,
	},
	{
		ID:      "4.3.1-srv-records-published",
		Section: "4.3.1",
		Title:   "Mail domains publish _amtp._tcp SRV records",
		Level:   Must,
		Role:    RoleOperator,
		Text:    "In order to receive mail addressed to a given host name, the host DNS zone MUST include one or more SRV records [RFC2782] that meet the following requirements:",
		Source:  SourceDraft,
		Wire:    "For each mail domain of the server under test named in the suite configuration, query SRV for _amtp._tcp.<domain> through the configured resolver; at least one record must exist.",
		Notes:   `The listed requirements are the service "amtp", the protocol "tcp" and the name of the mail domain, which together give the owner name _amtp._tcp.<domain>.`,
	},
	{
		ID:      "4.3.1-server-is-srv-target",
		Section: "4.3.1",
		Title:   "Server is the target of an SRV record",
		Level:   Must,
		Role:    RoleOperator,
		Text:    "A server MTA that receives mail for a given host name MUST be specified in a Target field of an SRV record associated with that host name.",
		Source:  SourceDraft,
		Wire:    "For each mail domain of the server under test, the _amtp._tcp SRV records found through the configured resolver must include one whose target is the host name in the server's certificate CN.",
	},
	{
		ID:         "4.3.2-client-ptr-required",
		Section:    "4.3.2",
		Title:      "Connecting client has a PTR record",
		Level:      Must,
		Role:       RoleOperator,
		Text:       "Any client MTA that connects to a server MTA MUST have a DNS PTR RR in the IN-ADDR.ARPA zone corresponding to the IP address used to initiate the connection.",
		Source:     SourceDraft,
		Untestable: "Binds the DNS zone of the client's address, and when the server under test relays to the suite's sink, the PTR record of its address comes from the suite's own DNS fixture rather than from the server.",
	},
	{
		ID:      "4.3.2-client-without-ptr-rejected",
		Section: "4.3.2",
		Title:   "Client without a PTR record is rejected",
		Level:   Must,
		Role:    RoleServer,
		Text:    "Any client MTA that connects to a server MTA MUST have a DNS PTR RR in the IN-ADDR.ARPA zone corresponding to the IP address used to initiate the connection.",
		Source:  SourceDraft,
		Wire:    "Connect from a loopback address that has no PTR record in the suite's DNS, presenting an otherwise valid certificate, and send EHLO with its CN; the reply must be 504.",
		Notes:   `The sentence binds the client; this entry checks the server's side. docs/interpretations.md (DNS failure at EHLO): amtpd answers a lookup that times out or gets SERVFAIL with 421, and only an authoritative "no PTR" with 504, so the suite's DNS answers NXDOMAIN here.`,
	},
	{
		ID:      "4.3.2-ptr-matches-certificate",
		Section: "4.3.2",
		Title:   "PTR record matches the certificate subject",
		Level:   Must,
		Role:    RoleServer,
		Text:    "The PTR RR MUST match the Subject field of the client MTA's X.509 certificate",
		Source:  SourceDraft,
		Wire:    "Connect from an address whose PTR record names a host other than the certificate CN, and send EHLO with the CN; the reply must be 504.",
		Notes:   `docs/interpretations.md item 7 reads "the Subject field" as the subject CN of the client certificate.`,
	},
	{
		ID:      "4.3.2-ptr-matches-ehlo",
		Section: "4.3.2",
		Title:   "PTR record matches the EHLO argument",
		Level:   Must,
		Role:    RoleServer,
		Text:    "and MUST also match the host name in the EHLO argument that the client MTA presents to the server MTA",
		Source:  SourceDraft,
		Wire:    "Connect from an address whose PTR record equals the certificate CN, and send EHLO with a different fully-qualified host name; the reply must be 504.",
	},
}
