package maildir

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"time"
)

// WaitContaining scans the tree until a message whose first MaxMessageSize
// bytes contain text appears, or ctx ends. Unlike Wait, it looks past the
// header section, for messages such as bounces that quote a token only in
// their body. Each scan reads only the files that are new or changed since
// the previous scan of the same call.
func (w *Watcher) WaitContaining(ctx context.Context, text []byte) ([]Message, error) {
	checked := map[string]fileKey{}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		found, err := w.scanContaining(text, checked)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			return found, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
}

func (w *Watcher) scanContaining(text []byte, checked map[string]fileKey) ([]Message, error) {
	var found []Message
	err := w.walkMessages(func(path string, key fileKey) error {
		if checked[path] == key {
			return nil
		}
		data, err := readHead(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		checked[path] = key
		if bytes.Contains(data, text) {
			found = append(found, Message{Path: path, Data: data})
		}
		return nil
	})
	return found, err
}
