package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/reference/message"
	"github.com/amtp-toolkit/amtp/reference/mpc"
	"github.com/amtp-toolkit/amtp/reference/queue"
)

// sendBounce queues a delivery status notification (RFC 3464) to the
// sender of env when some recipients failed. Section 6.4 of
// draft-weinman-amtp-03: a bounce always carries MPC net/autoresponse; it
// has the null reverse-path (RFC 5321 section 4.5.5), so a bounce is never
// bounced. A record in the spool keeps a restart from sending it twice.
func (d *Dispatcher) sendBounce(ctx context.Context, env *queue.Envelope, msg []byte) error {
	var failed []queue.Recipient
	for _, r := range env.Recipients {
		if r.State == queue.Failed {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 || env.BounceSent {
		return nil
	}
	if env.From == "" || env.Bounce {
		d.log.Info("not bouncing a message with the null reverse-path", "id", env.ID, "failed", len(failed))
		return nil
	}

	bounce := &queue.Envelope{
		From:       "",
		MPC:        mpc.Bounce.String(),
		Recipients: []queue.Recipient{{Address: env.From, State: queue.Pending}},
		ReceivedAt: time.Now(),
		Bounce:     true,
	}
	if err := d.enqueue(ctx, bounce, d.bounceMessage(env, failed, msg)); err != nil {
		return err
	}
	if _, err := d.opts.Spool.Update(env.ID, queue.Record{Time: time.Now(), Type: queue.RecordBounceSent}); err != nil {
		return fmt.Errorf("record bounce of %s: %w", env.ID, err)
	}
	d.opts.Metrics.Bounced.Add(1)
	d.log.Info("bounce queued", "id", env.ID, "to", env.From, "failed", len(failed))
	return nil
}

// bounceMessage builds a multipart/report message: a text part that names
// each failed recipient and the reason, the machine-readable
// message/delivery-status part, and the headers of the original message.
func (d *Dispatcher) bounceMessage(env *queue.Envelope, failed []queue.Recipient, original []byte) []byte {
	boundary := randomToken()
	host := d.opts.Hostname
	now := time.Now()

	var b strings.Builder
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	fmt.Fprintf(&b, "To: <%s>\r\n", env.From)
	fmt.Fprintf(&b, "Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s@%s>\r\n", env.ID, randomToken(), host)
	fmt.Fprintf(&b, "Auto-Submitted: auto-replied\r\n")
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n", host)
	fmt.Fprintf(&b, "Your message %s (MPC %s) could not be delivered to these recipients:\r\n\r\n", env.ID, env.MPC)
	for _, r := range failed {
		fmt.Fprintf(&b, "<%s>: %s\r\n", r.Address, oneLine(r.LastError))
	}
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", host)
	fmt.Fprintf(&b, "X-AMTP-Queue-ID: %s\r\n", env.ID)
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", env.ReceivedAt.Format(time.RFC1123Z))
	for _, r := range failed {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\n", r.Address)
		fmt.Fprintf(&b, "Action: failed\r\n")
		fmt.Fprintf(&b, "Status: %s\r\n", statusCode(r.LastCode))
		fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", diagnostic(r))
	}
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	b.Write(message.HeaderSection(original))
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return []byte(b.String())
}

// diagnostic returns the SMTP reply for the Diagnostic-Code field. The
// reasons of relay attempts often start with the reply code already.
func diagnostic(r queue.Recipient) string {
	text := oneLine(r.LastError)
	if strings.HasPrefix(text, strconv.Itoa(r.LastCode)+" ") {
		return text
	}
	return fmt.Sprintf("%d %s", r.LastCode, text)
}

// statusCode returns a DSN status (RFC 3463) for an SMTP reply code.
func statusCode(code int) string {
	if code >= 400 && code < 500 {
		return "4.0.0"
	}
	return "5.0.0"
}

// oneLine keeps a reason on one line of the bounce.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
