//go:build !unix

package queue

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens DIR/lock without locking it.
//
// NOTE: on systems without flock(2) nothing stops a second process from
// opening the same spool.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open spool lock: %w", err)
	}
	return f, nil
}
