package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"time"

	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/message"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/router"
)

// Relay is the Outbound that sends mail over AMTP and to SMTP gateways.
type Relay struct {
	// Resolver finds next hops by SRV lookup for public routes.
	Resolver resolver.Resolver
	// Public is the client identity for public network connections: a
	// certificate whose CN matches the PTR record of LocalAddr.
	Public client.Config
	// PortOverride replaces the port of every SRV target when non-zero.
	PortOverride uint16
	// Routes holds the client settings of each configured route, by the
	// route's domain ("*" included).
	Routes map[string]RouteClient
	// Hostname is the EHLO argument towards SMTP gateways.
	Hostname string
	Logger   *slog.Logger
}

// RouteClient is how to reach the smarthost of one configured route.
type RouteClient struct {
	ServerName string
	Config     client.Config // private routes: the private-CA client certificate
	RootCAs    *x509.CertPool
	LocalAddr  string
}

// Send implements Outbound.
func (r *Relay) Send(ctx context.Context, route router.Route, msg OutboundMessage) ([]RecipientResult, error) {
	switch route.Kind {
	case router.Public:
		return r.sendPublic(ctx, route, msg)
	case router.Private:
		return r.sendPrivate(ctx, route, msg)
	case router.Gateway:
		return r.sendGateway(ctx, route, msg)
	}
	return nil, PermanentError(fmt.Errorf("route kind %q cannot relay", route.Kind))
}

// sendPublic relays to the next hop of the domain's _amtp._tcp SRV records
// (section 4.3.1), trying hops in RFC 2782 order.
func (r *Relay) sendPublic(ctx context.Context, route router.Route, msg OutboundMessage) ([]RecipientResult, error) {
	hops, err := client.LookupNextHops(ctx, r.Resolver, route.Domain)
	if err != nil {
		return nil, classify(err)
	}
	if r.PortOverride != 0 {
		for i := range hops {
			hops[i].Port = r.PortOverride
		}
	}

	conn, err := client.DialNextHop(ctx, hops, r.Public)
	if err != nil {
		return nil, classify(err)
	}
	defer conn.Close()
	return r.sendOn(ctx, conn, msg)
}

// sendPrivate relays to the configured smarthost over a private network
// connection. Section 7: no SRV lookup.
func (r *Relay) sendPrivate(ctx context.Context, route router.Route, msg OutboundMessage) ([]RecipientResult, error) {
	rc, ok := r.routeClient(route)
	if !ok {
		return nil, PermanentError(fmt.Errorf("no client settings for the private route of %s", route.Domain))
	}
	conn, err := client.Dial(ctx, route.Smarthost, rc.ServerName, rc.Config)
	if err != nil {
		return nil, classify(err)
	}
	defer conn.Close()
	return r.sendOn(ctx, conn, msg)
}

func (r *Relay) routeClient(route router.Route) (RouteClient, bool) {
	if rc, ok := r.Routes[route.Domain]; ok {
		return rc, true
	}
	rc, ok := r.Routes["*"]
	return rc, ok
}

// sendOn sends msg over an open AMTP connection. The MPC value travels as
// the MPC= parameter and no MPC header field is added (section 4.4.4).
func (r *Relay) sendOn(ctx context.Context, conn *client.Conn, msg OutboundMessage) ([]RecipientResult, error) {
	res, err := conn.Send(ctx, client.Message{From: msg.From, To: msg.Recipients, MPC: msg.MPC, Data: msg.Data})
	if err != nil {
		return nil, classify(err)
	}
	if err := conn.Quit(); err != nil {
		r.Logger.Debug("QUIT failed after the message was sent", "server", conn.Addr(), "error", err)
	}

	results := make([]RecipientResult, 0, len(res.Recipients))
	for _, rr := range res.Recipients {
		outcome := Deferred
		switch rr.Status {
		case client.Delivered:
			outcome = Delivered
		case client.PermanentFailure:
			outcome = Failed
		}
		results = append(results, RecipientResult{
			Recipient: rr.Address,
			Outcome:   outcome,
			Code:      rr.Reply.Code,
			Text:      fmt.Sprintf("%s said: %s", conn.ServerName(), rr.Reply.String()),
		})
	}
	return results, nil
}

// classify marks permanent client errors, so the dispatcher bounces them
// instead of retrying.
func classify(err error) error {
	if client.IsTemporary(err) {
		return err
	}
	return PermanentError(err)
}

// sendGateway relays to a non-AMTP SMTP server. Section 4.4.4: relaying
// with another protocol inserts an MPC header field, after checking that
// the message has none (the session already refused such messages).
func (r *Relay) sendGateway(ctx context.Context, route router.Route, msg OutboundMessage) (_ []RecipientResult, sendErr error) {
	if message.HasMPCField(msg.Data) {
		return nil, PermanentError(errors.New("message already has an MPC header field"))
	}
	data := message.Prepend(msg.Data, message.Field{Name: "MPC", Value: msg.MPC.String()})

	rc, _ := r.routeClient(route)
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	if rc.LocalAddr != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(rc.LocalAddr)}
	}
	rawConn, err := dialer.DialContext(ctx, "tcp", route.Smarthost)
	if err != nil {
		return nil, fmt.Errorf("connect to SMTP gateway %s: %w", route.Smarthost, err)
	}
	conn := &budgetConn{Conn: rawConn, remaining: gatewayReadBudget(len(msg.Recipients))}
	deadline := time.Now().Add(10 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)

	// net/smtp takes no context, so a shutdown must interrupt its reads
	// and writes through the deadline. The error then names the shutdown
	// rather than the expired deadline.
	stopWatching := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stopWatching()
	defer func() {
		if sendErr != nil && ctx.Err() != nil {
			sendErr = fmt.Errorf("SMTP gateway %s: session interrupted: %w", route.Smarthost, ctx.Err())
		}
	}()

	host, _, _ := net.SplitHostPort(route.Smarthost)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, gatewayError(route, "greeting", err)
	}
	defer c.Close()

	if err := c.Hello(r.Hostname); err != nil {
		return nil, gatewayError(route, "EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && rc.RootCAs != nil {
		serverName := rc.ServerName
		if serverName == "" {
			serverName = host
		}
		if err := c.StartTLS(&tls.Config{RootCAs: rc.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12}); err != nil {
			return nil, gatewayError(route, "STARTTLS", err)
		}
	}
	if err := c.Mail(msg.From); err != nil {
		return nil, gatewayError(route, "MAIL", err)
	}

	results := make([]RecipientResult, 0, len(msg.Recipients))
	accepted := 0
	for _, rcpt := range msg.Recipients {
		if err := c.Rcpt(rcpt); err != nil {
			results = append(results, gatewayResult(rcpt, err))
			continue
		}
		accepted++
		results = append(results, RecipientResult{Recipient: rcpt, Outcome: Delivered, Code: 250})
	}
	if accepted == 0 {
		c.Quit()
		return results, nil
	}

	w, err := c.Data()
	if err != nil {
		return nil, gatewayError(route, "DATA", err)
	}
	if _, err := w.Write(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))); err != nil {
		return nil, gatewayError(route, "DATA", err)
	}
	if err := w.Close(); err != nil {
		// The final reply applies to every accepted recipient.
		for i := range results {
			if results[i].Outcome == Delivered {
				results[i] = gatewayResult(results[i].Recipient, err)
			}
		}
		return results, nil
	}
	for i := range results {
		if results[i].Outcome == Delivered {
			results[i].Text = "accepted by SMTP gateway " + route.Smarthost
		}
	}
	c.Quit()
	return results, nil
}

// gatewayReadBudget returns how many octets sendGateway reads from a
// gateway for a message with the given number of recipients. net/smtp of
// Go 1.26 bounds neither the length of a reply line nor the lines of a
// reply, so without a budget a gateway that never ends a reply fills the
// memory.
// Each expected reply (greeting, EHLO, STARTTLS, EHLO again, MAIL, one per
// RCPT, DATA, end of data, QUIT) may have 100 lines of 512 octets, the
// limits that reference/client applies to AMTP next hops. 64 KiB more are
// left for the server's side of a STARTTLS handshake, several times the
// size of a usual certificate chain.
func gatewayReadBudget(recipients int) int64 {
	const replyOctets = 100 * 512
	return int64(8+recipients)*replyOctets + 64<<10
}

// errGatewayReadBudget is returned by a budgetConn read past its budget.
var errGatewayReadBudget = errors.New("the gateway's replies exceed the size that a session needs; check that the route's smarthost is an SMTP server")

// budgetConn is a net.Conn whose reads fail with errGatewayReadBudget once
// remaining octets have been read.
type budgetConn struct {
	net.Conn
	remaining int64
}

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.remaining <= 0 {
		return 0, errGatewayReadBudget
	}
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.Conn.Read(p)
	c.remaining -= int64(n)
	return n, err
}

func gatewayError(route router.Route, step string, err error) error {
	var tp *textproto.Error
	if !errors.As(err, &tp) {
		return fmt.Errorf("SMTP gateway %s at %s: %w", route.Smarthost, step, err)
	}
	wrapped := fmt.Errorf("SMTP gateway %s at %s: %s", route.Smarthost, step, replyText(tp))
	if tp.Code >= 500 {
		return PermanentError(wrapped)
	}
	return wrapped
}

func gatewayResult(rcpt string, err error) RecipientResult {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		outcome := Deferred
		if tp.Code >= 500 {
			outcome = Failed
		}
		return RecipientResult{Recipient: rcpt, Outcome: outcome, Code: tp.Code, Text: replyText(tp)}
	}
	return RecipientResult{Recipient: rcpt, Outcome: Deferred, Code: 451, Text: err.Error()}
}

// replyText returns an SMTP reply as the server sent it, such as
// "550 5.1.1 no such user". It does not use tp.Error, which in Go 1.26
// quotes and escapes the text.
func replyText(tp *textproto.Error) string {
	return fmt.Sprintf("%03d %s", tp.Code, tp.Msg)
}
