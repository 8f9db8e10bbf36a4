// Package maildir delivers messages into Maildir folders, one per
// recipient at ROOT/DOMAIN/LOCALPART, with the durability the 250 reply
// promises: each file is written under tmp/, fsynced, renamed into new/,
// and the new/ directory is fsynced before Deliver returns.
package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/amtp-toolkit/amtp/reference/delivery"
	"github.com/amtp-toolkit/amtp/reference/message"
)

// Deliverer writes messages to Maildir folders under Root.
type Deliverer struct {
	Root     string
	Hostname string // the host part of Maildir file names

	counter atomic.Uint64
}

// New returns a Deliverer for root. It creates root if it is missing.
func New(root, hostname string) (*Deliverer, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("create Maildir root %s: %w", root, err)
	}
	return &Deliverer{Root: root, Hostname: sanitizeHostname(hostname)}, nil
}

// MailboxDir returns the Maildir folder of recipient, or an error when the
// address cannot name a folder safely (an empty, quoted or path-like local
// part).
func (d *Deliverer) MailboxDir(recipient string) (string, error) {
	at := strings.LastIndexByte(recipient, '@')
	if at <= 0 || at == len(recipient)-1 {
		return "", fmt.Errorf("recipient %q has no local part and domain", recipient)
	}
	local := strings.ToLower(recipient[:at])
	domain := strings.ToLower(recipient[at+1:])

	if !safeName(local) || !safeName(domain) {
		return "", fmt.Errorf("recipient %q cannot be mapped to a Maildir folder: use letters, digits and . _ + - = only", recipient)
	}
	return filepath.Join(d.Root, domain, local), nil
}

// safeName reports whether s can be used as one path element.
func safeName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.HasPrefix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("._+-=", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// Deliver writes msg with a Return-Path and an MPC header field (section
// 4.4.4 of draft-weinman-amtp-03) to the Maildir of every recipient. It
// refuses a message that already has an MPC field. On error some
// recipients may already have their copy.
func (d *Deliverer) Deliver(ctx context.Context, env *delivery.Envelope, msg []byte) error {
	for _, rcpt := range env.Recipients {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deliver message %s: %w", env.ID, err)
		}
		if err := d.DeliverTo(rcpt, env.From, env.MPC.String(), msg); err != nil {
			return fmt.Errorf("deliver message %s: %w", env.ID, err)
		}
	}
	return nil
}

// ErrMPCFieldPresent means the message already has an MPC header field,
// which section 4.4.4 forbids a server to deliver.
var ErrMPCFieldPresent = errors.New("message already has an MPC header field")

// DeliverTo writes one copy of msg to the Maildir of recipient, with a
// Return-Path field for from and an MPC field for mpcValue in front.
// Section 4.4.4: the server searches for a pre-existing MPC field before
// it inserts one, and never delivers a message that has one.
func (d *Deliverer) DeliverTo(recipient, from, mpcValue string, msg []byte) error {
	if message.HasMPCField(msg) {
		return ErrMPCFieldPresent
	}
	dir, err := d.MailboxDir(recipient)
	if err != nil {
		return err
	}

	content := message.Prepend(msg,
		message.Field{Name: "Return-Path", Value: "<" + from + ">"},
		message.Field{Name: "MPC", Value: mpcValue},
	)
	if _, err := d.write(dir, content); err != nil {
		return fmt.Errorf("deliver to %s: %w", recipient, err)
	}
	return nil
}

// write stores content in the Maildir at dir and returns the path of the
// new file.
func (d *Deliverer) write(dir string, content []byte) (string, error) {
	if err := ensureMaildir(dir); err != nil {
		return "", err
	}

	name := d.uniqueName()
	tmpPath := filepath.Join(dir, "tmp", name)
	newPath := filepath.Join(dir, "new", name)

	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", tmpPath, err)
	}
	_, writeErr := f.Write(content)
	syncErr := f.Sync()
	closeErr := f.Close()
	if err := errors.Join(writeErr, syncErr, closeErr); err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("write %s: %w", tmpPath, err)
	}

	if err := os.Rename(tmpPath, newPath); err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("move %s to new/: %w", tmpPath, err)
	}
	if err := syncDir(filepath.Join(dir, "new")); err != nil {
		return "", err
	}
	return newPath, nil
}

// uniqueName returns a Maildir file name: seconds, then microseconds,
// process ID and a per-process counter, then the host name.
func (d *Deliverer) uniqueName() string {
	now := time.Now()
	n := d.counter.Add(1)
	return strconv.FormatInt(now.Unix(), 10) +
		".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) +
		"Q" + strconv.FormatUint(n, 10) +
		"." + d.Hostname
}

// ensureMaildir creates dir with tmp, new and cur, and fsyncs each parent
// it changed so the folders survive a crash.
func ensureMaildir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		return nil
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return fmt.Errorf("create Maildir %s: %w", dir, err)
		}
	}
	for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if err := syncDir(p); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open directory %s for fsync: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", path, err)
	}
	return nil
}

// sanitizeHostname replaces the characters that Maildir file names reserve.
func sanitizeHostname(h string) string {
	if h == "" {
		h, _ = os.Hostname()
	}
	return strings.NewReplacer("/", "\\057", ":", "\\072").Replace(h)
}

// CheckRecipient reports whether mail for recipient can be stored, so the
// server can reject an unusable address at RCPT time instead of after DATA.
func (d *Deliverer) CheckRecipient(recipient string) error {
	_, err := d.MailboxDir(recipient)
	return err
}
