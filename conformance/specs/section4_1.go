package specs

import (
	"fmt"
	"net"
	"strconv"

	. "github.com/onsi/ginkgo/v2"

	"github.com/amtp-toolkit/amtp/fixtures/pki"
)

// maxSystemPort is the highest system port of RFC 6335, section 6. The
// draft's "0-1024" includes 1024, one port more.
const maxSystemPort = 1023

// systemPortRange returns whether port is inside or outside the system
// port range, in words for a reason.
func systemPortRange(port int) string {
	if port > maxSystemPort {
		return "outside the system port range 0-1023 (RFC 6335)"
	}
	return "inside the system port range 0-1023 (RFC 6335)"
}

// section4_1 checks draft section 4.1, Connection Requirements: the AMTP
// port, and an alternative port for private connections only.
func section4_1() {
	Describe("4.1 Connection Requirements", func() {
		clause("4.1-private-alternative-port", []string{"private"}, func(c *Check) {
			public, private, ok := c.listenerPorts()
			if !ok {
				return
			}
			if private == public {
				c.Info("the private listener uses the AMTP port %d of the public listener, on another address", private)
				return
			}
			c.Info("the private listener uses port %d, not the AMTP port %d, %s", private, public, systemPortRange(private))
		})

		clause("4.1-no-public-on-alternative-port", []string{"private"}, func(c *Check) {
			// The valid client has a public-CA certificate and a matching
			// PTR record, so it would be a public network connection.
			id, err := validClient()
			if err != nil {
				c.Error("%v", err)
				return
			}
			c.expectRejected(privateListener, rejection{label: "public client on the private listener", id: id, ehlo: id.CN})
		})
	})
}

// listenerPorts returns the ports of the public and the private listener.
// It records a skip or an error and returns ok false when there is no
// private listener or a port does not parse.
func (c *Check) listenerPorts() (public, private int, ok bool) {
	cfg := current()
	if cfg.PrivateTarget == "" {
		c.Skip("no private listener configured (--private-target)")
		return 0, 0, false
	}
	public, err := port(cfg.Target)
	if err != nil {
		c.Error("%v", err)
		return 0, 0, false
	}
	private, err = port(cfg.PrivateTarget)
	if err != nil {
		c.Error("%v", err)
		return 0, 0, false
	}
	return public, private, true
}

func port(hostPort string) (int, error) {
	_, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0, fmt.Errorf("invalid listener address %q: %w", hostPort, err)
	}
	number, err := strconv.Atoi(portText)
	if err != nil {
		return 0, fmt.Errorf("invalid port in listener address %q: %w", hostPort, err)
	}
	return number, nil
}

// privateClient returns the private-CA client certificate of the PKI.
func privateClient() (Identity, error) {
	return identity(pki.CertPrivateClient)
}
