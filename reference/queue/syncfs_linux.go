package queue

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// syncFilesystemOf calls syncfs(2) on the filesystem that holds f.
func syncFilesystemOf(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}

// checkSyncfs returns an error unless the kernel is Linux 5.8 or later.
// Before 5.8, syncfs fails only for a bad file descriptor, so a failed
// write would go unnoticed (sync(2) manual page, section BUGS).
func checkSyncfs() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("SyncFilesystem: read the kernel version: %w", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	major, minor, ok := parseKernelVersion(release)
	if !ok {
		return fmt.Errorf("SyncFilesystem: cannot parse kernel release %q", release)
	}
	if major < 5 || major == 5 && minor < 8 {
		return fmt.Errorf("SyncFilesystem needs Linux 5.8 or later, whose syncfs reports write errors; this kernel is %s, so leave SyncFilesystem off", release)
	}
	return nil
}

// parseKernelVersion returns the first two numbers of a release such as
// "6.18.44-fc-v1252".
func parseKernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorText := parts[1]
	if end := strings.IndexFunc(minorText, func(r rune) bool { return r < '0' || r > '9' }); end >= 0 {
		minorText = minorText[:end]
	}
	minor, err2 := strconv.Atoi(minorText)
	return major, minor, err1 == nil && err2 == nil
}
