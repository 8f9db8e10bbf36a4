// Package maildir finds the messages that the conformance suite sent in a
// tree of Maildir folders, whatever the layout of the tree.
//
// Every message the suite sends carries a header field TokenField with a
// token unique to the run and the message. A Watcher walks the tree under
// its root, reads every file in a folder named "new" or "cur" (the two
// Maildir folders that hold delivered messages), and indexes the files by
// the token they carry. So the suite needs to know only the root folder of
// a server's Maildirs, not how the server maps recipients to folders.
package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// TokenField is the header field that carries the suite's message token.
const TokenField = "X-AMTP-Conformance"

// Limits of a scan.
const (
	// MaxMessageSize is the number of bytes read from one file. The suite
	// sends messages of at most about 70 KB, so larger files are read only
	// in part.
	MaxMessageSize = 1 << 20
	// pollInterval is the time between two scans while Wait waits.
	pollInterval = 25 * time.Millisecond
)

// tokenPattern finds the token field at the start of a line. The token
// is made of letters, digits, dots and hyphens.
var tokenPattern = regexp.MustCompile(`(?im)^` + TokenField + `[ \t]*:[ \t]*([A-Za-z0-9.-]+)`)

// Message is one delivered file that carries a token.
type Message struct {
	Path string
	// Data contains the file's bytes, at most MaxMessageSize of them.
	Data []byte
}

// fileKey identifies one version of a file, so that a file is read again
// only when it changes.
type fileKey struct {
	size    int64
	modTime time.Time
}

// Watcher indexes the delivered messages under a root folder. It is safe
// for concurrent use.
type Watcher struct {
	root string

	mu sync.Mutex
	// read maps each file path to the version that was last read.
	read map[string]fileKey
	// tokens maps each token to the paths of the files that carry it.
	tokens map[string]map[string]bool
}

// New returns a watcher for the Maildir tree under root, which must be an
// existing folder.
func New(root string) (*Watcher, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("Maildir root: %w; pass the folder under which the server delivers mail", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("Maildir root %s is not a folder; pass the folder under which the server delivers mail", root)
	}
	return &Watcher{root: root, read: map[string]fileKey{}, tokens: map[string]map[string]bool{}}, nil
}

// Root returns the root folder.
func (w *Watcher) Root() string {
	return w.root
}

// Find scans the tree once and returns every message that carries token.
func (w *Watcher) Find(token string) ([]Message, error) {
	if err := w.scan(); err != nil {
		return nil, err
	}

	w.mu.Lock()
	paths := make([]string, 0, len(w.tokens[token]))
	for path := range w.tokens[token] {
		paths = append(paths, path)
	}
	w.mu.Unlock()

	var messages []Message
	for _, path := range paths {
		data, err := readHead(path)
		if errors.Is(err, fs.ErrNotExist) {
			// A mail reader moved the file from new to cur; the next scan
			// finds it there.
			continue
		}
		if err != nil {
			return nil, err
		}
		messages = append(messages, Message{Path: path, Data: data})
	}
	return messages, nil
}

// Wait scans the tree until a message that carries token appears or ctx
// ends. It returns the messages found, or ctx's error when none appeared.
func (w *Watcher) Wait(ctx context.Context, token string) ([]Message, error) {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		messages, err := w.Find(token)
		if err != nil {
			return nil, err
		}
		if len(messages) > 0 {
			return messages, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
}

// scan reads every new or changed file in the tree and indexes its token.
func (w *Watcher) scan() error {
	return w.walkMessages(func(path string, key fileKey) error {
		w.mu.Lock()
		seen := w.read[path] == key
		w.mu.Unlock()
		if seen {
			return nil
		}

		data, err := readHead(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}

		w.mu.Lock()
		defer w.mu.Unlock()
		w.read[path] = key
		for _, match := range tokenPattern.FindAllSubmatch(headerSection(data), -1) {
			token := string(match[1])
			if w.tokens[token] == nil {
				w.tokens[token] = map[string]bool{}
			}
			w.tokens[token][path] = true
		}
		return nil
	})
}

// walkMessages calls visit for every regular file in a new/ or cur/
// folder of the tree, with its size and modification time.
func (w *Watcher) walkMessages(visit func(path string, key fileKey) error) error {
	return filepath.WalkDir(w.root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// The entry vanished during the walk, as files do when a
				// mail reader moves them.
				return nil
			}
			return fmt.Errorf("scan Maildir tree %s: %w", w.root, err)
		}
		if !entry.Type().IsRegular() {
			return nil
		}
		if parent := filepath.Base(filepath.Dir(path)); parent != "new" && parent != "cur" {
			return nil
		}

		info, err := entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("scan Maildir tree %s: %w", w.root, err)
		}
		return visit(path, fileKey{size: info.Size(), modTime: info.ModTime()})
	})
}

// readHead returns the first MaxMessageSize bytes of the file at path.
func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, MaxMessageSize))
	if err != nil {
		return nil, fmt.Errorf("read delivered message %s: %w", path, err)
	}
	return data, nil
}

// headerSection returns the header section of a message: everything up to
// the first empty line, which ends in CRLF or in LF as Maildir files often
// do.
func headerSection(data []byte) []byte {
	for _, separator := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(data, separator); i >= 0 {
			data = data[:i+len(separator)]
		}
	}
	return data
}
