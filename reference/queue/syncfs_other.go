//go:build !linux

package queue

import (
	"errors"
	"os"
)

func syncFilesystemOf(*os.File) error {
	return errors.ErrUnsupported
}

func checkSyncfs() error {
	return errors.New("SyncFilesystem needs Linux 5.8 or later; leave it off on this system")
}
