package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// Indexes of the phases a unit measures, in the order of result.Phases.
const (
	phaseConnect = iota
	phaseHandshake
	phaseResumedHandshake
	phaseGreeting
	phaseEHLO
	phaseAuth
	phaseMail
	phaseRcpt
	phaseData
	phaseDataEnd
	phaseQuit
	phaseDelivery
	phaseTotal
	phaseLag
	numPhases
)

// phaseNames maps the indexes above to result phase names.
var phaseNames = result.Phases()

// identity is one client certificate of the pool with its source address.
type identity struct {
	name   string
	cn     string
	source netip.Addr
	// full offers no session ticket; resume offers one from cache.
	full   *tls.Config
	resume *tls.Config
	cache  tls.ClientSessionCache
}

// unit is one unit of work: a connection and everything the scenario
// does on it. The worker that runs it owns it.
type unit struct {
	intended time.Time
	started  time.Time
	step     int
	open     bool

	durations [numPhases]time.Duration
	measured  [numPhases]bool
	// perMessage holds the phases measured once per message (MAIL, RCPT,
	// DATA and end of data), indexed by phase; durations keeps only the
	// last of them.
	perMessage map[int][]time.Duration

	resumeOffered, resumed, fullHandshake bool
	sent, accepted, rejected, bytes       int64

	err      error
	errPhase int
	// invalid is the error of checkDurations, or nil.
	invalid error
}

func (u *unit) measure(phase int, d time.Duration) {
	u.durations[phase] = d
	u.measured[phase] = true
}

func (u *unit) addMessagePhase(phase int) {
	if u.perMessage == nil {
		u.perMessage = map[int][]time.Duration{}
	}
	u.perMessage[phase] = append(u.perMessage[phase], u.durations[phase])
}

// checkDurations returns an error when a measured duration is invalid:
// negative, or a total shorter than the phases it contains.
// Every phase runs inside the unit and is timed with the monotonic clock,
// so either is a generator bug.
func (u *unit) checkDurations() error {
	for phase := range numPhases {
		if u.measured[phase] && u.durations[phase] < 0 {
			return fmt.Errorf("phase %s has the negative duration %s", phaseName(phase), u.durations[phase])
		}
	}
	if !u.measured[phaseTotal] {
		return nil
	}

	var inside time.Duration
	for phase := phaseConnect; phase <= phaseQuit; phase++ {
		if list, ok := u.perMessage[phase]; ok {
			for _, d := range list {
				inside += d
			}
			continue
		}
		if u.measured[phase] {
			inside += u.durations[phase]
		}
	}
	if total := u.durations[phaseTotal]; total < inside {
		return fmt.Errorf("total %s is shorter than the %s its phases from connect to QUIT took", total, inside)
	}
	return nil
}

// phaseName returns the result phase name of a phase index.
func phaseName(phase int) string {
	return phaseNames[phase]
}

func (u *unit) fail(phase int, err error) error {
	u.err, u.errPhase = err, phase
	return err
}

// trackingCache records whether the handshake found a session to offer.
type trackingCache struct {
	tls.ClientSessionCache
	offered bool
}

func (c *trackingCache) Get(key string) (*tls.ClientSessionState, bool) {
	state, ok := c.ClientSessionCache.Get(key)
	if ok && state != nil {
		c.offered = true
	}
	return state, ok
}

// session is the client side of one AMTP connection.
type session struct {
	g      *generator
	u      *unit
	conn   net.Conn
	reader *bufio.Reader
	writer *bufio.Writer
}

// runUnit runs the scenario once on a new connection. It never returns an
// error: the outcome is in u.
func (g *generator) runUnit(ctx context.Context, u *unit) {
	id := g.identities[int(g.nextIdentity.Add(1)-1)%len(g.identities)]
	s := &session{g: g, u: u}
	defer func() {
		if s.conn != nil {
			s.conn.Close()
		}
	}()

	if err := s.connect(ctx, id); err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()

	if err := s.handshake(ctx, id); err != nil {
		return
	}
	if _, err := s.expect(phaseGreeting, "", 220); err != nil {
		return
	}

	switch g.cfg.Scenario {
	case result.ScenarioSession, result.ScenarioRelay:
		if err := s.ehlo(id); err != nil {
			return
		}
		if g.cfg.Scenario == result.ScenarioRelay {
			if err := s.auth(); err != nil {
				return
			}
		}
		for range g.cfg.Messages {
			if err := s.message(id); err != nil {
				return
			}
		}
	}

	_, _ = s.expect(phaseQuit, "QUIT", 221)
}

func (s *session) connect(ctx context.Context, id *identity) error {
	dialer := net.Dialer{
		Timeout:   s.g.cfg.Timeout,
		LocalAddr: &net.TCPAddr{IP: id.source.AsSlice()},
	}

	start := time.Now()
	conn, err := dialer.DialContext(ctx, "tcp", s.g.target.String())
	if err != nil {
		return s.u.fail(phaseConnect, err)
	}
	s.u.measure(phaseConnect, time.Since(start))
	s.conn = conn
	return nil
}

func (s *session) handshake(ctx context.Context, id *identity) error {
	config := id.full
	var tracker *trackingCache
	if id.resume != nil && s.g.offerResume() {
		tracker = &trackingCache{ClientSessionCache: id.cache}
		config = id.resume.Clone()
		config.ClientSessionCache = tracker
	}

	start := time.Now()
	tlsConn := tls.Client(s.conn, config)
	handshakeCtx, cancel := context.WithTimeout(ctx, s.g.cfg.Timeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(handshakeCtx); err != nil {
		return s.u.fail(phaseHandshake, err)
	}
	elapsed := time.Since(start)

	state := tlsConn.ConnectionState()
	s.u.resumeOffered = tracker != nil && tracker.offered
	s.u.resumed = state.DidResume
	s.u.fullHandshake = !state.DidResume
	if state.DidResume {
		s.u.measure(phaseResumedHandshake, elapsed)
	} else {
		s.u.measure(phaseHandshake, elapsed)
	}

	s.conn = tlsConn
	s.reader = bufio.NewReaderSize(tlsConn, maxLineBytes)
	s.writer = bufio.NewWriterSize(tlsConn, 16*1024)
	return nil
}

// expect sends command (unless empty), reads the reply and checks its
// code. It records the time from sending to the whole reply.
func (s *session) expect(phase int, command string, code int) (reply, error) {
	start := time.Now()
	if err := s.conn.SetDeadline(start.Add(s.g.cfg.Timeout)); err != nil {
		return reply{}, s.u.fail(phase, err)
	}
	if command != "" {
		s.writer.WriteString(command)
		s.writer.WriteString("\r\n")
		if err := s.writer.Flush(); err != nil {
			return reply{}, s.u.fail(phase, err)
		}
	}

	r, err := readReply(s.reader)
	if err != nil {
		return r, s.u.fail(phase, err)
	}
	if r.code != code {
		return r, s.u.fail(phase, &unexpectedReply{reply: r})
	}
	s.u.measure(phase, time.Since(start))
	return r, nil
}

func (s *session) ehlo(id *identity) error {
	_, err := s.expect(phaseEHLO, "EHLO "+id.cn, 250)
	return err
}

// auth authenticates with AUTH PLAIN, which the private listener requires.
func (s *session) auth() error {
	token := base64.StdEncoding.EncodeToString([]byte("\x00" + s.g.cfg.User + "\x00" + s.g.cfg.Password))
	_, err := s.expect(phaseAuth, "AUTH PLAIN "+token, 235)
	return err
}

// message sends one message and records MAIL, RCPT, DATA and the end of
// data as four phases.
func (s *session) message(id *identity) error {
	s.u.sent++
	mail := fmt.Sprintf("MAIL FROM:<load@%s>", id.cn)
	if s.g.cfg.MPC != NoMPC {
		mail += " MPC=" + s.g.cfg.MPC
	}
	if _, err := s.expect(phaseMail, mail, 250); err != nil {
		return err
	}
	s.u.addMessagePhase(phaseMail)

	if _, err := s.expect(phaseRcpt, "RCPT TO:<"+s.g.cfg.Recipient+">", 250); err != nil {
		return err
	}
	s.u.addMessagePhase(phaseRcpt)

	if _, err := s.expect(phaseData, "DATA", 354); err != nil {
		return err
	}
	s.u.addMessagePhase(phaseData)

	messageID := s.g.nextMessage.Add(1)
	body := s.g.body.render(messageID, id.cn, s.g.cfg.Recipient)
	s.u.bytes += int64(len(body))
	s.writer.Write(body)
	if s.g.sink != nil {
		s.g.sink.expect(messageID)
	}

	// The final dot and CRLF go out with the flush that expect does, so
	// the phase starts when the whole message is on its way.
	r, err := s.expect(phaseDataEnd, ".", 250)
	if err != nil {
		if r.code >= 400 {
			s.u.rejected++
		}
		if s.g.sink != nil {
			s.g.sink.forget(messageID)
		}
		return err
	}
	s.u.accepted++
	s.u.addMessagePhase(phaseDataEnd)
	return nil
}

// messageBody builds messages of a fixed size.
type messageBody struct {
	size    int
	padding []byte
}

func newMessageBody(size int) *messageBody {
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 2)[:70] + "\r\n"
	padding := []byte(strings.Repeat(line, size/len(line)+1))
	return &messageBody{size: size, padding: padding}
}

// render returns the message with its header, padded with body lines to
// about b.size bytes, dot-stuffing not needed because no line starts with
// a dot. The caller sends the final "." line.
func (b *messageBody) render(messageID int64, from, to string) []byte {
	header := fmt.Sprintf("From: <load@%s>\r\nTo: <%s>\r\nSubject: amtpkit load\r\nMessage-ID: <load-%d@%s>\r\n%s: %d\r\n\r\n",
		from, to, messageID, from, loadIDHeader, messageID)
	bodyLen := max(b.size-len(header), 2)
	bodyLen -= bodyLen % 72
	if bodyLen == 0 {
		bodyLen = 2
	}
	out := make([]byte, 0, len(header)+bodyLen+2)
	out = append(out, header...)
	if bodyLen >= 72 {
		out = append(out, b.padding[:bodyLen]...)
	} else {
		out = append(out, "\r\n"...)
	}
	return out
}

// loadIDHeader is the header field that carries the message number, so
// the relay sink can match a delivery to its send time.
const loadIDHeader = "X-Amtpkit-Load-ID"

// offerResume decides whether the next resume-scenario connection offers
// a session ticket: the share ResumeFraction, spread evenly.
func (g *generator) offerResume() bool {
	n := g.resumeCounter.Add(1)
	fraction := g.cfg.ResumeFraction
	return int64(float64(n)*fraction) != int64(float64(n-1)*fraction)
}
