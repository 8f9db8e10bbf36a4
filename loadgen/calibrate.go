package loadgen

import (
	"crypto"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
	"github.com/amtp-toolkit/amtp/loadgen/result"
)

// calibrationBudget is how long each of the three calibration loops runs.
const calibrationBudget = 200 * time.Millisecond

// warnShareOfCapacity is the share of the estimated handshake capacity
// above which a requested rate gets a warning.
const warnShareOfCapacity = 0.5

// calibrate measures, on one goroutine each, the client's signing rate,
// the verification rate of the server certificate's signature and the
// X25519MLKEM768 key exchange rate. From them it estimates the client's
// CPU per full handshake: one signature (CertificateVerify), two
// verifications (the server certificate and its CertificateVerify) and
// one key exchange. It returns warnings when the requested rate is near
// what that estimate allows.
func (g *generator) calibrate() (result.Calibration, []string) {
	start := time.Now()
	var cal result.Calibration
	var warnings []string

	cert, err := g.cfg.PKI.TLSCertificate(g.identities[0].name)
	if err != nil {
		return cal, []string{fmt.Sprintf("calibration could not load the client certificate: %v", err)}
	}
	if signer, ok := cert.PrivateKey.(crypto.Signer); ok {
		digest := sha256.Sum256([]byte("amtpkit load calibration"))
		cal.SignaturesPerSecond = ratePerSecond(func() error {
			_, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
			return err
		})
	}

	if server, ca, err := g.serverAndCA(); err == nil {
		cal.VerificationsPerSecond = ratePerSecond(func() error {
			return ca.CheckSignature(server.SignatureAlgorithm, server.RawTBSCertificate, server.Signature)
		})
	} else {
		warnings = append(warnings, fmt.Sprintf("calibration could not load the server certificate: %v", err))
	}

	cal.KeyExchangesPerSecond = ratePerSecond(keyExchange)

	if cal.SignaturesPerSecond > 0 && cal.VerificationsPerSecond > 0 && cal.KeyExchangesPerSecond > 0 {
		cal.HandshakeCPUUS = 1e6 * (1/cal.SignaturesPerSecond + 2/cal.VerificationsPerSecond + 1/cal.KeyExchangesPerSecond)
		cal.MaxHandshakesPerSecond = float64(runtime.GOMAXPROCS(0)) * 1e6 / cal.HandshakeCPUUS
	}
	cal.DurationSeconds = time.Since(start).Seconds()

	if requested := g.requestedRate(); cal.MaxHandshakesPerSecond > 0 && requested > warnShareOfCapacity*cal.MaxHandshakesPerSecond {
		warnings = append(warnings, fmt.Sprintf("the requested rate of %.0f connections/s is over %.0f%% of the %.0f full handshakes/s this generator can do on its %d cores by its calibration; the generator may be the bottleneck, so run shards on more machines",
			requested, warnShareOfCapacity*100, cal.MaxHandshakesPerSecond, runtime.GOMAXPROCS(0)))
	}
	return cal, warnings
}

// requestedRate returns the highest open-loop rate of this shard, or 0
// in closed loop.
func (g *generator) requestedRate() float64 {
	highest := g.cfg.Rate
	for _, r := range g.cfg.RateSteps {
		highest = max(highest, r)
	}
	return g.shardRate(highest)
}

// serverAndCA returns the PKI's server certificate and the CA that
// signed it.
func (g *generator) serverAndCA() (*x509.Certificate, *x509.Certificate, error) {
	m := g.cfg.PKI
	server, err := m.TLSCertificate(pki.CertServer)
	if err != nil {
		return nil, nil, err
	}
	for _, entry := range m.CAs {
		if entry.Name != pki.PublicCA {
			continue
		}
		data, err := os.ReadFile(m.Path(entry.Cert))
		if err != nil {
			return nil, nil, fmt.Errorf("read the public CA certificate: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, nil, fmt.Errorf("the public CA file %s contains no PEM block; recreate the PKI with 'amtpkit pki init --force'", m.Path(entry.Cert))
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse the public CA certificate %s: %w", m.Path(entry.Cert), err)
		}
		return server.Leaf, ca, nil
	}
	return nil, nil, fmt.Errorf("the PKI manifest has no CA named %q", pki.PublicCA)
}

// keyExchange does an X25519MLKEM768 key exchange. It also does the
// server's X25519 key generation and ML-KEM encapsulation, so it
// overestimates the client's cost.
func keyExchange() error {
	private, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	peer, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if _, err := private.ECDH(peer.PublicKey()); err != nil {
		return err
	}

	decapsulation, err := mlkem.GenerateKey768()
	if err != nil {
		return err
	}
	_, ciphertext := decapsulation.EncapsulationKey().Encapsulate()
	_, err = decapsulation.Decapsulate(ciphertext)
	return err
}

// ratePerSecond runs op for calibrationBudget and returns its rate, or 0
// when it fails.
func ratePerSecond(op func() error) float64 {
	start := time.Now()
	n := 0
	for time.Since(start) < calibrationBudget {
		if err := op(); err != nil {
			return 0
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}
