// Package delivery defines the hand-over of an accepted message from the
// SMTP session. The session passes an Envelope and the message to a
// Deliverer, which must make it durable before it returns, because the
// session sends the 250 reply to DATA only after that.
package delivery

import (
	"context"
	"time"

	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// Envelope is the SMTP envelope of one accepted message plus what the
// session learned about its origin.
type Envelope struct {
	ID         string    // queue ID, also logged and written in the Received field
	From       string    // reverse-path without <>; "" for the null reverse-path
	Recipients []string  // forward-paths accepted by RCPT, in order
	MPC        mpc.Value // the MPC= parameter of MAIL, as received
	ReceivedAt time.Time

	ClientAddr string // source address and port of the client MTA
	ClientCN   string // subject CN of the client certificate
	Private    bool   // arrived over a private network connection (section 7)
}

// Deliverer takes responsibility for an accepted message.
type Deliverer interface {
	// Deliver stores msg (the message as received, with the session's
	// trace field prepended and no MPC field) for every recipient of env.
	// It returns nil only once the message is durable. After an error
	// the session replies 451 instead of 250, so the client retries.
	Deliver(ctx context.Context, env *Envelope, msg []byte) error
}
