package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/smtp"
)

const sendUsage = `usage: amtpkit send --to ADDR [--to ADDR...] --mpc ROLE/CLASS --pki DIR
                    (--server HOST:PORT [--server-name NAME] | --dns IP:PORT)
                    [--from ADDR] [--cert NAME] [--source IP]
                    [--user NAME --password-env VAR] [--verbose] [FILE]

Sends one message over AMTP with the reference client and prints one line
per recipient with the outcome. The message is read from FILE, or from
standard input when FILE is missing. When the input has no header section
at all (its first line is not a header field such as "Subject: hi"), Date,
Message-ID and From fields are added in front of it; any other input is
sent as it is. Bare LF line endings are sent as CRLF.

The client identity is the certificate NAME of the PKI manifest in DIR
(see 'amtpkit pki init'); the connection comes from that certificate's
source address, whose PTR record the server checks. --server connects to
one server; --dns looks up the _amtp._tcp SRV records of each recipient
domain at that DNS server. AUTH PLAIN (--user) is for private network
connections, which must not use SRV records, so it requires --server.

Exit status: 0 when every recipient was accepted, 1 when any was not, 2
for invalid options.

options:
`

// sendInput is the input that "send" reads when no FILE is given.
var sendInput io.Reader = os.Stdin

// maxSendInput bounds the message that "send" reads, so a mistaken input
// such as /dev/zero fails instead of filling memory.
const maxSendInput = 64 << 20

// dnsLookupTimeout bounds each DNS lookup of "send --dns".
const dnsLookupTimeout = 5 * time.Second

// sendOptions are the parsed options of "send".
type sendOptions struct {
	to          []string
	mpcText     string
	from        string
	fromSet     bool
	server      string
	dns         string
	serverName  string
	pkiDir      string
	certName    string
	source      string
	user        string
	passwordEnv string
	verbose     bool
	file        string
}

func newSendFlags(opts *sendOptions) *flag.FlagSet {
	flags := flag.NewFlagSet("send", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Func("to", "recipient `address`; repeat for several recipients (required)", func(value string) error {
		opts.to = append(opts.to, value)
		return nil
	})
	flags.StringVar(&opts.mpcText, "mpc", "", "MPC `value` role/class of the message, such as per/individual (required)")
	flags.StringVar(&opts.from, "from", "", "sender `address` (default amtpkit@ followed by the certificate CN); \"\" sends the null reverse-path")
	flags.StringVar(&opts.server, "server", "", "connect to this AMTP server `HOST:PORT`")
	flags.StringVar(&opts.dns, "dns", "", "find each recipient domain's servers by SRV lookup at this DNS server `IP:PORT`")
	flags.StringVar(&opts.serverName, "server-name", "", "`name` the server certificate must carry with --server (default the CN of the PKI's server certificate)")
	flags.StringVar(&opts.pkiDir, "pki", "", "PKI `directory` written by 'amtpkit pki init' (required)")
	flags.StringVar(&opts.certName, "cert", pki.CertClient, "client certificate `name` in the PKI manifest")
	flags.StringVar(&opts.source, "source", "", "source `IP` address (default the certificate's source address in the manifest)")
	flags.StringVar(&opts.user, "user", "", "authenticate with AUTH PLAIN as this `name` (private network connections)")
	flags.StringVar(&opts.passwordEnv, "password-env", "", "environment `variable` that contains the AUTH PLAIN password")
	flags.BoolVar(&opts.verbose, "verbose", false, "log the AMTP transaction to stderr (the AUTH password and message data are omitted)")
	return flags
}

// runSend runs "amtpkit send".
func runSend(ctx context.Context, args []string, stdout io.Writer) error {
	var opts sendOptions
	flags := newSendFlags(&opts)
	err := flags.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, sendUsage)
		flags.SetOutput(stdout)
		flags.PrintDefaults()
		return err
	}
	if err != nil {
		return usageErrorf("%v; run 'amtpkit send -h' for the options", err)
	}
	flags.Visit(func(f *flag.Flag) {
		if f.Name == "from" {
			opts.fromSet = true
		}
	})
	switch flags.NArg() {
	case 0:
	case 1:
		opts.file = flags.Arg(0)
	default:
		return usageErrorf("more than one FILE: %q; send takes one message file, or reads standard input", flags.Args())
	}

	value, err := opts.validate()
	if err != nil {
		return err
	}
	identity, err := loadIdentity(&opts)
	if err != nil {
		return err
	}
	data, err := readMessage(opts.file)
	if err != nil {
		return err
	}
	data = addMissingHeader(data, opts.from, identity.cn, time.Now())

	level := slog.LevelInfo
	if opts.verbose {
		level = slog.LevelDebug
	}
	identity.config.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	sender := &sender{opts: &opts, config: identity.config, serverName: identity.serverName, stdout: stdout}
	msg := client.Message{From: opts.from, MPC: value, Data: data}
	return sender.deliver(ctx, msg)
}

// validate checks the options that need no file and returns the MPC value.
func (o *sendOptions) validate() (mpc.Value, error) {
	if len(o.to) == 0 {
		return mpc.Value{}, usageErrorf("missing --to; give at least one recipient, for example --to alice@example.test")
	}
	for _, rcpt := range o.to {
		path, _, err := smtp.ParseRcpt("TO:<" + rcpt + ">")
		if err != nil || path != rcpt {
			return mpc.Value{}, usageErrorf("invalid --to %q: %v; give an address such as alice@example.test, without angle brackets", rcpt, err)
		}
		if o.dns != "" && !strings.Contains(rcpt, "@") {
			return mpc.Value{}, usageErrorf("--to %q has no domain to look up with --dns; give a full address", rcpt)
		}
	}
	if o.fromSet && o.from != "" {
		path, _, err := smtp.ParseMail("FROM:<" + o.from + ">")
		if err != nil || path != o.from {
			return mpc.Value{}, usageErrorf("invalid --from %q: %v; give an address such as me@example.org, or \"\" for the null reverse-path", o.from, err)
		}
	}

	if o.mpcText == "" {
		return mpc.Value{}, usageErrorf("missing --mpc; every AMTP message needs an MPC value, for example --mpc per/individual")
	}
	value, err := mpc.Parse(o.mpcText)
	if err != nil {
		return mpc.Value{}, usageErrorf("invalid --mpc %q: %v", o.mpcText, err)
	}

	switch {
	case o.server == "" && o.dns == "":
		return mpc.Value{}, usageErrorf("missing --server HOST:PORT or --dns IP:PORT; give one to say where to deliver")
	case o.server != "" && o.dns != "":
		return mpc.Value{}, usageErrorf("--server and --dns exclude each other; give one")
	case o.serverName != "" && o.server == "":
		return mpc.Value{}, usageErrorf("--server-name needs --server; with --dns the certificate must carry the SRV target name")
	case o.user != "" && o.dns != "":
		return mpc.Value{}, usageErrorf("--user needs --server: a private network connection must not use SRV records (draft-weinman-amtp-03 section 7)")
	case (o.user == "") != (o.passwordEnv == ""):
		return mpc.Value{}, usageErrorf("--user and --password-env go together; give both for AUTH PLAIN, or neither")
	case o.pkiDir == "":
		return mpc.Value{}, usageErrorf("missing --pki DIR; create a PKI with 'amtpkit pki init --dir DIR'")
	}
	if o.server != "" {
		if _, _, err := net.SplitHostPort(o.server); err != nil {
			return mpc.Value{}, usageErrorf("invalid --server %q: %v; use HOST:PORT such as 127.0.0.1:4025", o.server, err)
		}
	}
	if o.dns != "" {
		if _, err := netip.ParseAddrPort(o.dns); err != nil {
			return mpc.Value{}, usageErrorf("invalid --dns %q: %v; use IP:PORT such as 127.0.0.1:5353", o.dns, err)
		}
	}
	return value, nil
}

// sendIdentity is the client identity loaded from the PKI.
type sendIdentity struct {
	config     client.Config
	cn         string
	serverName string // for --server
}

// loadIdentity loads the client certificate, the trusted CA and the
// source address from the PKI manifest, and completes opts.from.
func loadIdentity(opts *sendOptions) (*sendIdentity, error) {
	manifest, err := pki.Load(opts.pkiDir)
	if err != nil {
		return nil, usageErrorf("--pki %s: %v", opts.pkiDir, err)
	}
	entry, err := manifest.Cert(opts.certName)
	if err != nil {
		return nil, usageErrorf("--cert %s: %v", opts.certName, err)
	}
	certificate, err := manifest.TLSCertificate(opts.certName)
	if err != nil {
		return nil, err
	}
	roots, err := manifest.CAPool(pki.PublicCA)
	if err != nil {
		return nil, err
	}

	id := &sendIdentity{cn: entry.CN, serverName: opts.serverName}
	id.config = client.Config{Certificate: certificate, RootCAs: roots}

	source := opts.source
	if source == "" {
		source = entry.SourceAddr
	}
	if source != "" {
		addr, err := netip.ParseAddr(source)
		if err != nil {
			return nil, usageErrorf("invalid --source %q: %v; give an IP address such as 127.0.0.2", source, err)
		}
		id.config.LocalAddr = addr
	}

	if id.serverName == "" {
		server, err := manifest.Cert(pki.CertServer)
		if err != nil {
			return nil, err
		}
		id.serverName = server.CN
	}

	if opts.user != "" {
		password, ok := os.LookupEnv(opts.passwordEnv)
		if !ok || password == "" {
			return nil, usageErrorf("--password-env %s: the environment variable is unset or empty; export the AUTH PLAIN password in it", opts.passwordEnv)
		}
		id.config.Auth = &client.PlainAuth{Username: opts.user, Password: password}
	}

	if !opts.fromSet {
		opts.from = "amtpkit@" + entry.CN
	}
	return id, nil
}

// readMessage reads the message from path, or from sendInput when path is
// empty.
func readMessage(path string) ([]byte, error) {
	input := sendInput
	name := "standard input"
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErrorf("cannot read the message file: %v; check the FILE argument", err)
		}
		defer f.Close()
		input, name = f, path
	}

	data, err := io.ReadAll(io.LimitReader(input, maxSendInput+1))
	if err != nil {
		return nil, fmt.Errorf("read the message from %s: %w", name, err)
	}
	if len(data) > maxSendInput {
		return nil, fmt.Errorf("the message in %s exceeds %d MiB; send a smaller one", name, maxSendInput>>20)
	}
	return data, nil
}

// addMissingHeader returns data with Date, Message-ID and From fields in
// front when data has no header section at all, that is when its first
// line is not a header field. An empty first line is an empty header
// section, so the fields go before it without another empty line. Any
// other data is returned unchanged.
func addMissingHeader(data []byte, from, cn string, now time.Time) []byte {
	firstLine, _, _ := bytes.Cut(data, []byte("\n"))
	firstLine = bytes.TrimSuffix(firstLine, []byte("\r"))
	if isHeaderField(firstLine) {
		return data
	}

	author := from
	if author == "" {
		author = "amtpkit@" + cn
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", rand.Text(), cn)
	fmt.Fprintf(&b, "From: %s\r\n", author)
	if len(firstLine) > 0 {
		b.WriteString("\r\n")
	}
	b.Write(data)
	return b.Bytes()
}

// isHeaderField reports whether line starts a header field of RFC 5322:
// a field name of printable ASCII other than ":", then a colon, with
// white space before the colon allowed as in the obsolete syntax.
func isHeaderField(line []byte) bool {
	name, _, found := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !found || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// sender delivers one message to its recipients and prints the outcomes.
type sender struct {
	opts       *sendOptions
	config     client.Config
	serverName string
	stdout     io.Writer

	failed int
}

// deliver sends msg to every recipient, through --server or through the
// SRV records of each recipient domain, and returns an error when any
// recipient was not accepted.
func (s *sender) deliver(ctx context.Context, msg client.Message) error {
	if s.opts.server != "" {
		msg.To = s.opts.to
		s.sendTo(ctx, msg, func() (*client.Conn, error) {
			return client.Dial(ctx, s.opts.server, s.serverName, s.config)
		})
	} else {
		dns := resolver.NewDNS(s.opts.dns, dnsLookupTimeout)
		for _, group := range groupByDomain(s.opts.to) {
			msg.To = group.recipients
			s.sendTo(ctx, msg, func() (*client.Conn, error) {
				hops, err := client.LookupNextHops(ctx, dns, group.domain)
				if err != nil {
					return nil, err
				}
				return client.DialNextHop(ctx, hops, s.config)
			})
		}
	}

	if s.failed > 0 {
		return fmt.Errorf("%d of %d recipients not delivered", s.failed, len(s.opts.to))
	}
	return nil
}

// sendTo opens a session with dial, sends msg and prints a line for each
// recipient of msg.
func (s *sender) sendTo(ctx context.Context, msg client.Message, dial func() (*client.Conn, error)) {
	conn, err := dial()
	if err != nil {
		s.printSessionFailure(msg.To, err)
		return
	}
	defer func() {
		// Send has already sent QUIT and closed the session after a
		// policy denial or a network failure.
		if err := conn.Quit(); err != nil && !errors.Is(err, client.ErrClosed) {
			s.config.Logger.Info("QUIT failed", "server", conn.Addr(), "error", err)
		}
	}()

	result, err := conn.Send(ctx, msg)
	decided := map[string]bool{}
	if result != nil {
		for _, rcpt := range result.Recipients {
			if err != nil && rcpt.Reply.Code == 0 {
				continue // the session failed before the server decided
			}
			decided[rcpt.Address] = true
			s.printRecipient(rcpt)
		}
	}
	if err != nil {
		var undecided []string
		for _, rcpt := range msg.To {
			if !decided[rcpt] {
				undecided = append(undecided, rcpt)
			}
		}
		s.printSessionFailure(undecided, err)
	}
}

// printRecipient prints the outcome of one recipient: the address, the
// status and the server's reply.
func (s *sender) printRecipient(rcpt client.RecipientResult) {
	if rcpt.Status != client.Delivered {
		s.failed++
	}
	fmt.Fprintf(s.stdout, "%s: %s: %s\n", rcpt.Address, rcpt.Status, rcpt.Reply)
}

// printSessionFailure prints a line for each recipient that a failed
// session left without an outcome.
func (s *sender) printSessionFailure(recipients []string, err error) {
	status := client.PermanentFailure
	if client.IsTemporary(err) {
		status = client.TemporaryFailure
	}
	for _, rcpt := range recipients {
		s.failed++
		fmt.Fprintf(s.stdout, "%s: %s: %v\n", rcpt, status, err)
	}
}

// domainGroup is the recipients of one domain.
type domainGroup struct {
	domain     string
	recipients []string
}

// groupByDomain groups recipients by domain, compared without regard to
// case, in the order in which each domain first appears.
func groupByDomain(recipients []string) []domainGroup {
	var groups []domainGroup
	index := map[string]int{}
	for _, rcpt := range recipients {
		domain := strings.ToLower(rcpt[strings.LastIndexByte(rcpt, '@')+1:])
		i, ok := index[domain]
		if !ok {
			i = len(groups)
			index[domain] = i
			groups = append(groups, domainGroup{domain: domain})
		}
		groups[i].recipients = append(groups[i].recipients, rcpt)
	}
	return groups
}
