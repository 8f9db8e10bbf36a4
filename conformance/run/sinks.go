package run

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/amtp-toolkit/amtp/conformance/sink"
	"github.com/amtp-toolkit/amtp/conformance/specs"
	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// sinkDeniedReply is the reply of the denying sink to every RCPT, so that
// the server under test must bounce the message.
const sinkDeniedReply = "550 5.7.1 This sink of the conformance suite accepts no mail"

// relaySinks are the AMTP sinks of a run in DNS mode "serve", and the zone
// records that route their domains to them.
type relaySinks struct {
	accepting, denying *specs.RelaySink
	servers            []*sink.Server
	// records are zone file lines: an _amtp._tcp SRV record and an A
	// record for each sink.
	records []string
}

// startRelaySinks starts two sinks on 127.0.0.1: one that accepts every
// message for sink.<domain>, and one for sink-deny.<domain> that declares
// "MPC DENY=*/optout" and rejects every recipient with 550.
func startRelaySinks(m *pki.Manifest) (*relaySinks, error) {
	loopback := netip.MustParseAddr("127.0.0.1")
	sinks := &relaySinks{}
	setups := []struct {
		domain string
		cfg    sink.Config
		target **specs.RelaySink
	}{
		{"sink." + m.Domain, sink.Config{}, &sinks.accepting},
		{"sink-deny." + m.Domain, sink.Config{MPCLines: []string{"MPC DENY=*/optout"}, RCPTReply: sinkDeniedReply}, &sinks.denying},
	}
	for _, setup := range setups {
		cert, err := sink.IssueCertificate(m, setup.domain, loopback)
		if err != nil {
			sinks.Close()
			return nil, err
		}
		cfg := setup.cfg
		cfg.Listen = loopback.String() + ":0"
		cfg.Hostname = setup.domain
		cfg.Certificate = cert
		server, err := sink.Start(cfg)
		if err != nil {
			sinks.Close()
			return nil, err
		}
		sinks.servers = append(sinks.servers, server)
		*setup.target = &specs.RelaySink{Domain: setup.domain, Server: server}
		sinks.records = append(sinks.records,
			fmt.Sprintf("_amtp._tcp.%s. IN SRV 0 0 %d %s.", setup.domain, server.Addr().Port(), setup.domain),
			fmt.Sprintf("%s. IN A %s", setup.domain, loopback))
	}
	return sinks, nil
}

// Close stops the sinks.
func (s *relaySinks) Close() error {
	var errs []error
	for _, server := range s.servers {
		errs = append(errs, server.Close())
	}
	return errors.Join(errs...)
}
