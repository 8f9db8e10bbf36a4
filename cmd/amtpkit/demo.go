package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/conformance/run"
	"github.com/amtp-toolkit/amtp/fixtures/dnsserver"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen"
	loadresult "github.com/amtp-toolkit/amtp/loadgen/result"
	"github.com/amtp-toolkit/amtp/reports/cli"
	loadreport "github.com/amtp-toolkit/amtp/reports/load"
)

// defaultDemoOut is the folder of the demo's reports without --out.
const defaultDemoOut = "reports"

// demoStartTimeout bounds the wait for amtpd's listeners, and
// demoStopTimeout the wait for it to exit after SIGTERM.
const (
	demoStartTimeout = 15 * time.Second
	demoStopTimeout  = 15 * time.Second
)

// demoLoadRate is the arrival rate of the demo's load, in sessions per
// second: well within what two cores sustain, so the demo shows latencies
// rather than saturation.
const demoLoadRate = 50

// demoInterrupted is the exit status of a demo stopped by SIGINT or
// SIGTERM, as a shell reports a process killed by SIGINT.
const demoInterrupted = 130

// demoServerTimeout is the command timeout of the demo's amtpd, short so
// that the suite's timeout clauses finish within seconds.
const demoServerTimeout = 3 * time.Second

const demoUsage = `usage: amtpkit demo [--out DIR] [--amtpd PATH]

Stages a whole run on loopback and writes its reports: a test PKI and
zone, the fixture DNS server, the reference server amtpd, the conformance
suite against it, then a short bounded load run. Everything it starts is
stopped when it ends, also on Ctrl-C. The PKI, amtpd's configuration, log,
Maildir and spool stay in DIR/demo, so the rerun command of each clause
works after the demo.

Exit status:
  0    the demo ran and wrote its reports
  1    a step failed; the message names it
  2    invalid options
  130  interrupted by Ctrl-C or SIGTERM; everything it started is stopped

options:
`

// demoFiles are the reports the demo writes, relative to --out.
var demoFiles = struct {
	conformJSON, conformJUnit, conformHTML, loadJSON, loadHTML string
}{
	conformJSON:  "conformance.json",
	conformJUnit: "conformance.junit.xml",
	conformHTML:  "conformance.html",
	loadJSON:     "load.json",
	loadHTML:     "load.html",
}

// runDemo runs "amtpkit demo".
func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("amtpkit demo", flag.ContinueOnError)
	out := flags.String("out", defaultDemoOut, "`folder` to write the reports to; its demo/ subfolder holds the staged PKI, configuration and logs")
	amtpdPath := flags.String("amtpd", "", "`path` of the amtpd binary (default: amtpd beside amtpkit, then on PATH)")
	loadDuration := flags.Duration("load-duration", 5*time.Second, "`duration` of the session load")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), demoUsage)
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usageErrorf("unexpected argument %q; run 'amtpkit demo --help'", flags.Arg(0))
	}
	if *loadDuration <= 0 || *loadDuration > 10*time.Minute {
		return usageErrorf("--load-duration %v is out of range; give a duration from 1s to 10m", *loadDuration)
	}

	amtpd, err := findAmtpd(*amtpdPath)
	if err != nil {
		return usageErrorf("%v", err)
	}

	// amtpd resolves relative paths in its configuration against the
	// configuration's folder, so every path the demo writes is absolute.
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return usageErrorf("invalid --out %s: %v", *out, err)
	}

	d := &demo{out: outDir, work: filepath.Join(outDir, "demo"), amtpdPath: amtpd, loadDuration: *loadDuration, stdout: stdout}
	err = d.run(ctx)
	if ctx.Err() != nil {
		return &exitError{status: demoInterrupted, err: errors.New("interrupted; every process the demo started is stopped")}
	}
	return err
}

// findAmtpd returns the amtpd binary to start: path when set, else amtpd
// in the folder of this executable, else amtpd on PATH.
func findAmtpd(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("--amtpd %s: %w; give the path of an amtpd binary, such as bin/amtpd after 'make build'", path, err)
		}
		return path, nil
	}

	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "amtpd")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}

	found, err := exec.LookPath("amtpd")
	if err != nil {
		return "", errors.New("amtpd not found beside amtpkit or on PATH; run 'make build' and use bin/amtpkit, or give --amtpd PATH")
	}
	return found, nil
}

// demo is one run of "amtpkit demo".
type demo struct {
	out, work    string
	amtpdPath    string
	loadDuration time.Duration
	stdout       io.Writer

	manifest  *pki.Manifest
	dnsListen string
	// publicListen, public6Listen and privateListen are the fixed
	// addresses of amtpd's listeners, so that amtpd started again from
	// the same configuration serves the rerun commands of the report.
	publicListen, public6Listen, privateListen string
	// gatewaySink and privateSink are the loopback addresses of the
	// suite's plain SMTP sink and private AMTP sink, routed to by amtpd.
	gatewaySink, privateSink string
	// ipv6 is set when ::1 is usable, for the IPv6 PTR check.
	ipv6   bool
	server *amtpdProcess
}

func (d *demo) run(ctx context.Context) (err error) {
	if err := d.stage(); err != nil {
		return err
	}

	d.server, err = startAmtpdProcess(ctx, d.amtpdPath, filepath.Join(d.work, "amtpd.toml"), filepath.Join(d.work, "amtpd.log"), d.ipv6)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := d.server.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	public := d.server.public
	if d.server.public6 != "" {
		public += " and " + d.server.public6
	}
	fmt.Fprintf(d.stdout, "amtpd is running: public listener %s, private listener %s, log %s\n", public, d.server.private, d.server.logPath)

	conformResult, err := d.conform(ctx)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	loadResult, err := d.load(ctx)
	if err != nil {
		return err
	}

	d.summarize(conformResult, loadResult)
	return nil
}

// stage writes the PKI, zone and amtpd configuration into the work folder,
// replacing those of an earlier demo.
func (d *demo) stage() error {
	if err := os.RemoveAll(d.work); err != nil {
		return fmt.Errorf("clear the demo folder %s: %w", d.work, err)
	}
	if err := os.MkdirAll(d.work, 0o755); err != nil {
		return fmt.Errorf("create the demo folder: %w", err)
	}

	m, err := pki.Init(pki.Options{Dir: filepath.Join(d.work, "pki")})
	if err != nil {
		return fmt.Errorf("create the demo PKI: %w", err)
	}
	d.manifest = m

	for _, addr := range []*string{&d.dnsListen, &d.gatewaySink, &d.privateSink} {
		if *addr, err = freeLoopbackPort(); err != nil {
			return err
		}
	}
	for _, addr := range []*string{&d.publicListen, &d.privateListen} {
		if *addr, err = freeTCPPort("127.0.0.1"); err != nil {
			return err
		}
	}
	if d.public6Listen, err = freeTCPPort("::1"); err == nil {
		d.ipv6 = true
	}

	config, err := d.amtpdConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.work, "amtpd.toml"), []byte(config), 0o644); err != nil {
		return fmt.Errorf("write the amtpd configuration: %w", err)
	}
	return nil
}

// amtpdConfig returns the configuration of the demo's amtpd, with public
// listeners on 127.0.0.1 (and ::1 when usable) and a private one on the
// fixed addresses of the demo.
func (d *demo) amtpdConfig() (string, error) {
	public := []string{d.publicListen}
	if d.ipv6 {
		public = append(public, d.public6Listen)
	}
	return suiteAmtpdConfig{
		manifest:       d.manifest,
		work:           d.work,
		publicListen:   public,
		privateListen:  d.privateListen,
		dnsListen:      d.dnsListen,
		gatewaySink:    d.gatewaySink,
		privateSink:    d.privateSink,
		commandTimeout: demoServerTimeout,
	}.render()
}

// suiteAmtpdConfig describes an amtpd set up for a whole conformance run.
// It uses the PKI's certificates and the suite's DNS server, denies
// */optout, delivers to a Maildir under work and routes two domains to the
// suite's gateway and private sinks.
type suiteAmtpdConfig struct {
	manifest                            *pki.Manifest
	work                                string
	publicListen                        []string
	privateListen                       string
	dnsListen, gatewaySink, privateSink string
	commandTimeout                      time.Duration
}

// render returns the TOML configuration and creates the Maildir folder.
func (c suiteAmtpdConfig) render() (string, error) {
	m := c.manifest
	server, err := m.Cert(pki.CertServer)
	if err != nil {
		return "", fmt.Errorf("amtpd configuration: %w", err)
	}
	privateClient, err := m.Cert(pki.CertPrivateClient)
	if err != nil {
		return "", fmt.Errorf("amtpd configuration: %w", err)
	}
	caPaths := map[string]string{}
	for _, ca := range m.CAs {
		caPaths[ca.Name] = m.Path(ca.Cert)
	}
	for _, name := range []string{pki.PublicCA, pki.PrivateCA} {
		if caPaths[name] == "" {
			return "", fmt.Errorf("amtpd configuration: CA %s is not in the PKI manifest", name)
		}
	}

	maildir, spool := filepath.Join(c.work, "maildir"), filepath.Join(c.work, "spool")
	if err := os.MkdirAll(maildir, 0o755); err != nil {
		return "", fmt.Errorf("create the Maildir folder: %w", err)
	}

	quoted := make([]string, len(c.publicListen))
	for i, addr := range c.publicListen {
		quoted[i] = strconv.Quote(addr)
	}

	return fmt.Sprintf(`# amtpd configuration for a conformance run, written by amtpkit.
hostname = %q

[tls]
cert = %q
key = %q

[dns]
server = %q
timeout = "2s"

[public]
listen = [%s]
client_ca = [%q]

[private]
listen = [%q]
client_ca = [%q]
users = %q

[policy]
mpc = ["DENY */optout"]

[[domain]]
name = %q
mailboxes = ["alice", "bob", "postmaster"]

[delivery]
maildir = %q

[queue]
dir = %q

[limits]
max_sessions = 1000
max_sessions_per_ip = 500
command_timeout = %q

[log]
level = "info"

# The next hops of the suite's relay checks: its plain SMTP sink as a
# non-AMTP gateway, and its AMTP sink with a private-CA certificate.
[[route]]
domain = "gateway.%s"
kind = "gateway"
smarthost = %q

[[route]]
domain = "private-sink.%s"
kind = "private"
smarthost = %q
server_name = "private-sink.%s"
cert = %q
key = %q
server_ca = [%q]
`, server.CN, m.Path(server.Cert), m.Path(server.Key), c.dnsListen, strings.Join(quoted, ", "), caPaths[pki.PublicCA],
		c.privateListen, caPaths[pki.PrivateCA], m.Path(m.UsersFile), m.Domain, maildir, spool, c.commandTimeout.String(),
		m.Domain, c.gatewaySink,
		m.Domain, c.privateSink, m.Domain, m.Path(privateClient.Cert), m.Path(privateClient.Key), caPaths[pki.PrivateCA]), nil
}

// freeLoopbackPort returns 127.0.0.1:PORT with a port that is free for
// both UDP and TCP, for a DNS server.
func freeLoopbackPort() (string, error) {
	for range 20 {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free loopback port: %w", err)
		}
		addr := udp.LocalAddr().String()
		tcp, err := net.Listen("tcp", addr)
		udp.Close()
		if err == nil {
			tcp.Close()
			return addr, nil
		}
	}
	return "", errors.New("find a free loopback port: no port was free for both UDP and TCP in 20 tries")
}

// freeTCPPort returns HOST:PORT with a TCP port that is free on host.
func freeTCPPort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free TCP port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// conform runs the suite against the demo's amtpd, serving the PKI's zone
// on the demo's DNS address, and writes its reports.
func (d *demo) conform(ctx context.Context) (*result.Result, error) {
	fmt.Fprintln(d.stdout, "running the conformance suite...")
	opts := run.Options{
		Target:        d.server.public,
		Target6:       d.server.public6,
		PrivateTarget: d.server.private,
		GatewaySink:   d.gatewaySink,
		PrivateSink:   d.privateSink,
		ServerTimeout: demoServerTimeout,
		PKIDir:        filepath.Join(d.work, "pki"),
		DNSMode:       run.DNSServe,
		DNSListen:     d.dnsListen,
		Maildir:       filepath.Join(d.work, "maildir"),
		StepTimeout:   run.DefaultStepTimeout,
		Output:        io.Discard,
	}
	r, err := run.Run(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("conformance run: %w", err)
	}

	if err := r.Write(filepath.Join(d.out, demoFiles.conformJSON)); err != nil {
		return nil, err
	}
	err = cli.WriteConformance(r, cli.Outputs{
		JUnit:              filepath.Join(d.out, demoFiles.conformJUnit),
		HTML:               filepath.Join(d.out, demoFiles.conformHTML),
		InterpretationsURL: localInterpretations(d.out),
	})
	if err != nil {
		return nil, fmt.Errorf("render the conformance reports: %w", err)
	}
	return r, nil
}

// localInterpretations returns the path of docs/interpretations.md
// relative to the folder out, when the demo runs in a checkout of the
// repository, so the report opens the page of that checkout. Otherwise it
// returns "", which selects the published page.
func localInterpretations(out string) string {
	page, err := filepath.Abs(filepath.Join("docs", "interpretations.md"))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(page); err != nil {
		return ""
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(dir, page)
	if err != nil {
		return ""
	}
	return filepath.ToSlash(rel)
}

// load runs a short handshake and session load against amtpd, with the
// PKI's zone served on the demo's DNS address for the PTR checks.
func (d *demo) load(ctx context.Context) (*loadresult.Result, error) {
	zone, err := dnsserver.LoadZone(d.manifest.Path(d.manifest.ZoneFile))
	if err != nil {
		return nil, fmt.Errorf("load the demo zone: %w", err)
	}
	dns, err := dnsserver.Start(ctx, d.dnsListen, zone, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("start the demo DNS server: %w", err)
	}
	defer dns.Close()

	fmt.Fprintf(d.stdout, "running the session load for %v...\n", d.loadDuration)
	r, err := loadgen.Run(ctx, loadgen.Config{
		Target:     d.server.public,
		PKI:        d.manifest,
		Scenario:   loadresult.ScenarioSession,
		Rate:       demoLoadRate,
		Duration:   d.loadDuration,
		Messages:   2,
		Thresholds: []string{"errors<1%"},
		Progress:   d.stdout,
		Terminal:   isTerminal(os.Stdout),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("load run: %w", err)
	}

	if err := r.Write(filepath.Join(d.out, demoFiles.loadJSON)); err != nil {
		return nil, err
	}
	html, err := os.Create(filepath.Join(d.out, demoFiles.loadHTML))
	if err != nil {
		return nil, fmt.Errorf("write the load report: %w", err)
	}
	if err := loadreport.WriteHTML(html, r); err != nil {
		html.Close()
		return nil, fmt.Errorf("render the load report: %w", err)
	}
	if err := html.Close(); err != nil {
		return nil, fmt.Errorf("write the load report: %w", err)
	}
	return r, nil
}

// summarize prints both results and the paths of the reports.
func (d *demo) summarize(conformResult *result.Result, loadResult *loadresult.Result) {
	fmt.Fprintln(d.stdout)
	printSummary(d.stdout, conformResult, filepath.Join(d.out, demoFiles.conformJSON), nil)
	fmt.Fprintln(d.stdout)
	if err := loadgen.WriteSummary(d.stdout, loadResult); err != nil {
		fmt.Fprintf(d.stdout, "load summary: %v\n", err)
	}
	fmt.Fprintln(d.stdout, "\nreports:")
	for _, name := range []string{demoFiles.conformJSON, demoFiles.conformJUnit, demoFiles.conformHTML, demoFiles.loadJSON, demoFiles.loadHTML} {
		fmt.Fprintf(d.stdout, "  %s\n", filepath.Join(d.out, name))
	}

	fmt.Fprintf(d.stdout, "\namtpd is stopped. To rerun a clause with the command its report gives, start it again\n"+
		"on the same ports, with amtpd and amtpkit on PATH:\n  %s --config %s\n", d.amtpdPath, filepath.Join(d.work, "amtpd.toml"))
}

// amtpdProcess is an amtpd started by the demo in its own process group,
// killed when amtpkit dies.
type amtpdProcess struct {
	cmd                      *exec.Cmd
	public, public6, private string
	logPath                  string
	// done is closed when amtpd has exited, with waitErr set.
	done    chan struct{}
	waitErr error
}

var amtpdListenerLine = regexp.MustCompile(`amtpd: (public|private) listener on (\S+)`)

// startAmtpdProcess starts amtpd with config, sending its log to logPath,
// and waits until it names both listeners.
func startAmtpdProcess(ctx context.Context, path, config, logPath string, ipv6 bool) (*amtpdProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the amtpd log: %w", err)
	}

	cmd := exec.Command(path, "--config", config)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start amtpd: %w", err)
	}
	// Its own process group keeps a terminal's Ctrl-C from reaching amtpd
	// before the demo stops it; Pdeathsig kills it should amtpkit die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start amtpd %s: %w", path, err)
	}

	p := &amtpdProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	listeners := make(chan [2]string, 4)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			fmt.Fprintln(logFile, lines.Text())
			if m := amtpdListenerLine.FindStringSubmatch(lines.Text()); m != nil {
				listeners <- [2]string{m[1], m[2]}
			}
		}
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()

	deadline := time.NewTimer(demoStartTimeout)
	defer deadline.Stop()
	for p.public == "" || p.private == "" || (ipv6 && p.public6 == "") {
		select {
		case l := <-listeners:
			switch {
			case l[0] == "private":
				p.private = l[1]
			case strings.HasPrefix(l[1], "["):
				p.public6 = l[1]
			default:
				p.public = l[1]
			}
		case <-p.done:
			return nil, fmt.Errorf("amtpd exited at start (%v); see its log %s", p.waitErr, logPath)
		case <-deadline.C:
			p.kill()
			return nil, fmt.Errorf("amtpd named no listeners within %v; see its log %s", demoStartTimeout, logPath)
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		}
	}
	return p, nil
}

// stop ends amtpd with SIGTERM, and with SIGKILL when it has not exited
// within demoStopTimeout.
func (p *amtpdProcess) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("amtpd exited before the demo ended (%v); see its log %s", p.waitErr, p.logPath)
	default:
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop amtpd: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(demoStopTimeout):
		p.kill()
		return fmt.Errorf("amtpd did not exit within %v of SIGTERM and was killed; see its log %s", demoStopTimeout, p.logPath)
	}
}

// kill ends the whole process group of amtpd at once.
func (p *amtpdProcess) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
