package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/amtp-toolkit/amtp/reference/client"
	"github.com/amtp-toolkit/amtp/reference/config"
	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/maildir"
	"github.com/amtp-toolkit/amtp/reference/queue"
	"github.com/amtp-toolkit/amtp/reference/resolver"
	"github.com/amtp-toolkit/amtp/reference/router"
	"github.com/amtp-toolkit/amtp/reference/server"
)

// serve runs the server, the queue and the optional metrics listener until
// ctx is done. With check set it only builds everything and reports.
func serve(ctx context.Context, cfg *config.Config, check bool, stdout, stderr io.Writer) int {
	logger := newLogger(cfg.Log, stderr)
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "amtpd: %v\n", err)
		return code
	}

	res := resolver.NewDNS(cfg.DNS.Server, cfg.DNS.Timeout.Duration)
	local, err := maildir.New(cfg.Delivery.Maildir, cfg.Hostname)
	if err != nil {
		return fail(exitFailure, err)
	}
	relay, err := newRelay(cfg, res, logger)
	if err != nil {
		return fail(exitUsage, err)
	}
	var localDomains []string
	for _, d := range cfg.Domains {
		localDomains = append(localDomains, d.Name)
	}
	rt, err := router.New(localDomains, server.RoutesFromConfig(cfg.Routes))
	if err != nil {
		return fail(exitUsage, err)
	}
	if check {
		fmt.Fprintf(stdout, "amtpd: configuration %s is valid\n", cfg.Path)
		return exitOK
	}

	syncfs := cfg.Queue.Sync == "syncfs"
	if cfg.Queue.Sync == "auto" {
		err := queue.SyncFilesystemSupported()
		syncfs = err == nil
		if err != nil {
			logger.Info("queue.sync auto: using fsync per message file", "reason", err)
		}
	}
	spool, err := queue.Open(cfg.Queue.Dir, queue.Options{Logger: logger.With("component", "queue"), SyncFilesystem: syncfs})
	if err != nil {
		return fail(exitFailure, err)
	}
	defer spool.Close()

	hostname := cfg.Hostname
	if hostname == "" {
		hostname = relay.Hostname
	}
	disp := dispatch.New(dispatch.Options{
		Spool:    spool,
		Router:   rt,
		Local:    local,
		Outbound: relay,
		Retry: dispatch.RetryPolicy{
			Base:        cfg.Queue.RetryBase.Duration,
			MaxInterval: cfg.Queue.RetryMaxInterval.Duration,
			MaxAge:      cfg.Queue.MaxAge.Duration,
		},
		Workers:  cfg.Queue.Workers,
		Hostname: hostname,
		Logger:   logger.With("component", "dispatch"),
	})

	srv, err := server.New(server.Options{Config: cfg, Resolver: res, Deliverer: &localChecker{disp, local}, Logger: logger})
	if err != nil {
		return fail(exitUsage, err)
	}
	if err := srv.Listen(); err != nil {
		return fail(exitFailure, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := disp.ServeControl(runCtx, filepath.Join(cfg.Queue.Dir, dispatch.ControlSocket)); err != nil {
		return fail(exitFailure, err)
	}
	if cfg.Metrics.Listen != "" {
		addr, err := serveMetrics(runCtx, cfg.Metrics.Listen, disp, logger)
		if err != nil {
			return fail(exitFailure, err)
		}
		fmt.Fprintf(stdout, "amtpd: metrics listener on %s\n", addr)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		disp.Run(runCtx)
	}()

	for _, kind := range []string{"public", "private"} {
		for _, a := range srv.Addrs()[kind] {
			fmt.Fprintf(stdout, "amtpd: %s listener on %s\n", kind, a)
		}
	}

	// Stop accepting and let sessions finish first, then stop delivery.
	srv.Serve(ctx)
	cancel()
	wg.Wait()
	return exitOK
}

// localChecker is the session's Deliverer: it queues through the
// dispatcher and checks local mailbox names with the Maildir deliverer.
type localChecker struct {
	*dispatch.Dispatcher
	local *maildir.Deliverer
}

func (l *localChecker) CheckRecipient(rcpt string) error {
	return l.local.CheckRecipient(rcpt)
}

// newRelay builds the outbound side from the [relay] and [[route]]
// sections.
func newRelay(cfg *config.Config, res resolver.Resolver, logger *slog.Logger) (*dispatch.Relay, error) {
	cert, err := tls.LoadX509KeyPair(cfg.Relay.Cert, cfg.Relay.Key)
	if err != nil {
		return nil, fmt.Errorf("relay certificate %s: %w", cfg.Relay.Cert, err)
	}
	roots, err := config.LoadCertPool(cfg.Relay.ServerCA)
	if err != nil {
		return nil, fmt.Errorf("relay.server_ca: %w", err)
	}
	clientLog := logger.With("component", "client")

	public := client.Config{Certificate: cert, RootCAs: roots, Logger: clientLog}
	if cfg.Relay.SourceAddr != "" {
		public.LocalAddr = netip.MustParseAddr(cfg.Relay.SourceAddr)
	}
	hostname := cfg.Hostname
	if hostname == "" && cert.Leaf != nil {
		hostname = cert.Leaf.Subject.CommonName
	}

	relay := &dispatch.Relay{
		Resolver:     res,
		Public:       public,
		PortOverride: uint16(cfg.Relay.Port),
		Routes:       map[string]dispatch.RouteClient{},
		Hostname:     hostname,
		Logger:       clientLog,
	}
	for _, r := range cfg.Routes {
		rc, err := routeClient(cfg, r, clientLog)
		if err != nil {
			return nil, err
		}
		relay.Routes[strings.ToLower(r.Domain)] = rc
	}
	return relay, nil
}

func routeClient(cfg *config.Config, r config.Route, logger *slog.Logger) (dispatch.RouteClient, error) {
	host, _, _ := net.SplitHostPort(r.Smarthost)
	rc := dispatch.RouteClient{ServerName: r.ServerName, LocalAddr: r.SourceAddr}
	if rc.ServerName == "" {
		rc.ServerName = host
	}

	caFiles := r.ServerCA
	if len(caFiles) == 0 {
		caFiles = cfg.Relay.ServerCA
	}
	roots, err := config.LoadCertPool(caFiles)
	if err != nil {
		return rc, fmt.Errorf("route %s server_ca: %w", r.Domain, err)
	}
	rc.RootCAs = roots
	if r.Kind != "private" {
		return rc, nil
	}

	cert, err := tls.LoadX509KeyPair(r.Cert, r.Key)
	if err != nil {
		return rc, fmt.Errorf("route %s certificate %s: %w", r.Domain, r.Cert, err)
	}
	rc.Config = client.Config{Certificate: cert, RootCAs: roots, Logger: logger}
	if r.SourceAddr != "" {
		rc.Config.LocalAddr = netip.MustParseAddr(r.SourceAddr)
	}
	if r.User != "" {
		password, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return rc, fmt.Errorf("route %s password_file: %w", r.Domain, err)
		}
		rc.Config.Auth = &client.PlainAuth{Username: r.User, Password: strings.TrimRight(string(password), "\r\n")}
	}
	return rc, nil
}

// serveMetrics serves GET /metrics in the Prometheus text format and
// returns the bound address.
func serveMetrics(ctx context.Context, addr string, disp *dispatch.Dispatcher, logger *slog.Logger) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := disp.WriteMetrics(w); err != nil {
			logger.Warn("writing metrics failed", "error", err)
		}
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener failed", "error", err)
		}
	}()
	return l.Addr().String(), nil
}
