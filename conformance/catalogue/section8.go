package catalogue

// Clauses of draft-weinman-amtp-03 section 8, Security Considerations.
// The section's other sentences describe risks and bind no party.
var section8 = []Clause{
	{
		ID:      "8-private-additional-authentication",
		Section: "8",
		Title:   "Private connections require SMTP AUTH",
		Level:   Should,
		Role:    RoleServer,
		Text:    "If a server accepts a private network connection, the server SHOULD require additional client authentication, such as that provided by the SMTP Authentication Extension [RFC2554], to mitigate any damage from lost or stolen X.509 certificates.",
		Source:  SourceDraft,
		Wire:    "On the private listener, after a successful EHLO, send MAIL without authenticating; the reply should be 530, and AUTH with a wrong password should get 535.",
		Notes:   "Section 7 asks for the same in its first item; docs/interpretations.md (Private listener).",
	},
}
