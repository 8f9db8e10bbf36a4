package dispatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// ControlSocket is the name of the Unix socket in the spool folder on
// which a running amtpd takes queue commands from `amtpd queue`.
const ControlSocket = "control.sock"

// ServeControl serves queue commands on a Unix socket at path until ctx is
// done. Each connection sends one line and gets one line back:
//
//	RETRY ID    -> OK retrying ID      | ERR ...
//	RETRY-ALL   -> OK retrying N messages
//	DELETE ID   -> OK deleted ID       | ERR ...
//
// The socket is created with mode 0600: only the owner of the spool may
// control the queue.
func (d *Dispatcher) ServeControl(ctx context.Context, path string) error {
	os.Remove(path) // a stale socket from a crash
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}

	go func() {
		<-ctx.Done()
		l.Close()
		os.Remove(path)
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					d.log.Warn("control socket accept failed", "error", err)
				}
				return
			}
			go d.handleControl(conn)
		}
	}()
	return nil
}

func (d *Dispatcher) handleControl(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))

	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	fields := strings.Fields(line)
	reply := d.controlCommand(fields)
	fmt.Fprintln(conn, reply)
}

func (d *Dispatcher) controlCommand(fields []string) string {
	if len(fields) == 0 {
		return "ERR empty command"
	}
	switch {
	case fields[0] == "RETRY" && len(fields) == 2:
		if !d.RetryNow(fields[1]) {
			return "ERR message " + fields[1] + " is not in the queue; run 'amtpd queue list' for the IDs"
		}
		d.log.Info("retry requested by the operator", "id", fields[1])
		return "OK retrying " + fields[1]
	case fields[0] == "RETRY-ALL" && len(fields) == 1:
		n := d.RetryAll()
		d.log.Info("retry of the whole queue requested by the operator", "messages", n)
		return fmt.Sprintf("OK retrying %d message(s)", n)
	case fields[0] == "DELETE" && len(fields) == 2:
		if err := d.Delete(fields[1]); err != nil {
			return "ERR " + err.Error()
		}
		return "OK deleted " + fields[1]
	}
	return fmt.Sprintf("ERR unknown command %q; use RETRY ID, RETRY-ALL or DELETE ID", strings.Join(fields, " "))
}
