// Package queue is the durable spool of amtpd: every accepted message is
// one file under DIR/msg/, written and fsynced before Put returns, so the
// server may send the 250 reply to DATA as soon as Put returns nil.
//
// Delivery progress is appended to the message's file as Records, so a
// message is never rewritten. Open rebuilds every envelope from the files.
// Concurrent Puts and Removes share directory fsyncs (group commit, see
// commit.go). One process at a time may open a spool: Open takes an
// exclusive lock on DIR/lock.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxBatch is the value of Options.MaxBatch when it is zero.
const DefaultMaxBatch = 256

// Errors of the Spool methods, matched with errors.Is.
var (
	ErrNotFound = errors.New("message not in the spool")
	ErrExists   = errors.New("message ID already in the spool")
	ErrClosed   = errors.New("spool is closed")
)

// Options configures a Spool.
type Options struct {
	// MaxBatch is the maximum number of Puts and Removes that share one
	// directory fsync. Zero means DefaultMaxBatch.
	MaxBatch int
	// Logger receives corrupt files, repaired files and fsync failures.
	// Nil means slog.Default().
	Logger *slog.Logger
	// SyncFilesystem makes each commit call syncfs(2) once instead of
	// fsyncing every new file. On the disk measured in BENCHMARKS.md
	// that stored 2 to 5 times more messages per second. But syncfs
	// also writes the dirty data of every other process on the spool's
	// filesystem, and a write error in any file there fails the batch.
	// Use it only where the spool has a filesystem of its own. It needs
	// Linux 5.8 or later, the first version whose syncfs reports write
	// errors, and Open fails elsewhere.
	SyncFilesystem bool
}

// Spool is an open spool directory. Its methods are safe for concurrent
// use.
type Spool struct {
	dir        string
	msgDir     string
	tmpDir     string
	corruptDir string
	maxBatch   int
	log        *slog.Logger
	ids        idGenerator
	lock       *os.File
	msgDirFile *os.File // kept open for the directory fsyncs

	syncFilesystem bool

	// closeMu is held shared by Put, Update, Remove and Load for their
	// whole run, so Close waits for them.
	closeMu sync.RWMutex
	closed  bool

	mu       sync.RWMutex
	entries  map[string]*entry
	reserved map[string]bool // IDs of Puts in progress

	committer
}

// entry is the in-memory state of one message file.
type entry struct {
	// mu serializes the writers of the file (Update, Remove) and Load,
	// so records are appended one at a time.
	mu sync.Mutex
	// env is never changed after it is published: Update stores a new
	// copy under Spool.mu, so readers may clone it under Spool.mu.RLock.
	env *Envelope
	// validLen is the offset just past the last complete record, where
	// the next record is written.
	validLen int64
	// truncate is set when a failed append may have left bytes after
	// validLen that the next Update must cut off first.
	truncate bool
	removed  bool
}

// Open opens the spool in dir, creating dir, msg/, tmp/ and corrupt/ as
// needed. It deletes the files left in tmp/ by Puts that never returned,
// cuts off incomplete last records, moves corrupt files to corrupt/ and
// loads every envelope. Message bodies stay on disk.
//
// Open fails if another process has the spool open, if a file in msg/ has
// a format version that this package cannot read, or if a file cannot be
// read or moved.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("invalid MaxBatch %d: use a positive number, or 0 for %d", opts.MaxBatch, DefaultMaxBatch)
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SyncFilesystem {
		if err := checkSyncfs(); err != nil {
			return nil, err
		}
	}
	s := &Spool{
		dir:        dir,
		msgDir:     filepath.Join(dir, "msg"),
		tmpDir:     filepath.Join(dir, "tmp"),
		corruptDir: filepath.Join(dir, "corrupt"),
		maxBatch:   opts.MaxBatch,
		log:        opts.Logger,
		entries:    make(map[string]*entry),
		reserved:   make(map[string]bool),

		syncFilesystem: opts.SyncFilesystem,
	}

	if err := s.createDirs(); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock

	if err := s.load(); err != nil {
		s.lock.Close()
		return nil, err
	}
	s.msgDirFile, err = os.Open(s.msgDir)
	if err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("open spool directory %s: %w", s.msgDir, err)
	}
	s.startCommitter()
	return s, nil
}

// createDirs creates the spool folders. It fsyncs dir and its parent when
// it added entries to them, so the folders survive a crash. Ancestors that
// MkdirAll creates above the parent are not fsynced.
func (s *Spool) createDirs() error {
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			return fmt.Errorf("create spool directory: %w", err)
		}
		if err := syncDir(filepath.Dir(s.dir)); err != nil {
			return err
		}
	}
	created := false
	for _, sub := range []string{s.msgDir, s.tmpDir, s.corruptDir} {
		err := os.Mkdir(sub, 0o750)
		if err == nil {
			created = true
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create spool directory: %w", err)
		}
	}
	if created {
		return syncDir(s.dir)
	}
	return nil
}

// load empties tmp/ and reads every file in msg/.
func (s *Spool) load() error {
	leftovers, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("read spool directory: %w", err)
	}
	for _, de := range leftovers {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, de.Name())); err != nil {
			return fmt.Errorf("remove leftover of an unfinished Put: %w", err)
		}
	}

	names, err := os.ReadDir(s.msgDir)
	if err != nil {
		return fmt.Errorf("read spool directory: %w", err)
	}
	quarantined, repaired := 0, 0
	for _, de := range names {
		name := de.Name()
		if de.IsDir() {
			s.log.Warn("skipping a directory in the spool's msg/ folder", "path", filepath.Join(s.msgDir, name))
			continue
		}
		ent, wasRepaired, err := s.loadFile(name)
		if errors.Is(err, ErrCorrupt) {
			if err := s.quarantine(name, err); err != nil {
				return err
			}
			quarantined++
			continue
		}
		if err != nil {
			return err
		}
		if wasRepaired {
			repaired++
		}
		s.entries[name] = ent
	}

	s.log.Info("spool opened", "dir", s.dir, "messages", len(s.entries),
		"tmp_removed", len(leftovers), "corrupt_moved", quarantined, "records_cut", repaired)
	return nil
}

// loadFile reads msg/NAME and cuts off an incomplete last record. The
// returned flag reports whether it cut one off.
func (s *Spool) loadFile(name string) (*entry, bool, error) {
	path := filepath.Join(s.msgDir, name)
	if !validID(name) {
		return nil, false, corruptError("file name %q is not a message ID", name)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()

	sf, err := readSpoolFile(f, false)
	if err != nil {
		return nil, false, fmt.Errorf("read spool file %s: %w", path, err)
	}
	if sf.env.ID != name {
		return nil, false, corruptError("envelope ID %q differs from the file name %s", sf.env.ID, path)
	}

	repaired := false
	if sf.fileLen > sf.validLen {
		// The Update that wrote the incomplete record never returned
		// success, so no caller relies on it. Cutting it off lets the next record start
		// on a line of its own.
		if err := f.Truncate(sf.validLen); err != nil {
			return nil, false, fmt.Errorf("cut off incomplete record of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, false, fmt.Errorf("fsync %s: %w", path, err)
		}
		s.log.Warn("cut off an incomplete last record", "id", name, "bytes", sf.fileLen-sf.validLen)
		repaired = true
	}
	return &entry{env: sf.env, validLen: sf.validLen}, repaired, nil
}

// quarantine moves msg/NAME to corrupt/, adding a suffix if corrupt/
// already has that name, and logs why.
func (s *Spool) quarantine(name string, reason error) error {
	src := filepath.Join(s.msgDir, name)
	dst := filepath.Join(s.corruptDir, name)
	if _, err := os.Lstat(dst); err == nil {
		dst += "." + strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("move corrupt spool file %s to %s (%v): %w", src, s.corruptDir, reason, err)
	}
	if err := errors.Join(syncDir(s.corruptDir), syncDir(s.msgDir)); err != nil {
		return err
	}
	s.log.Error("moved a corrupt spool file aside; inspect it and requeue the message by hand",
		"id", name, "path", dst, "error", reason)
	return nil
}

// Put stores env and msg and returns the message ID once the file and its
// directory entry are durable. If env.ID is empty, Put makes a new ID that
// sorts by time. Put stores a copy of env, with empty recipient states set
// to Pending, times in UTC and a zero ReceivedAt set to now.
//
// When Put returns an error, the message is not in the spool. Put checks
// ctx before it writes and while it waits for a commit that has not yet
// started. Once the commit starts, Put waits for it, so that a nil return
// and a durable file always go together.
func (s *Spool) Put(ctx context.Context, env *Envelope, msg []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("put message: %w", err)
	}
	e, err := prepareEnvelope(env)
	if err != nil {
		return "", fmt.Errorf("put message: %w", err)
	}

	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return "", ErrClosed
	}
	if e.ID == "" {
		e.ID = s.ids.next()
	}
	if err := s.reserve(e.ID); err != nil {
		return "", err
	}
	validLen, err := s.write(ctx, e, msg)
	if err != nil {
		s.mu.Lock()
		delete(s.reserved, e.ID)
		s.mu.Unlock()
		return "", fmt.Errorf("put message %s: %w", e.ID, err)
	}

	s.mu.Lock()
	delete(s.reserved, e.ID)
	s.entries[e.ID] = &entry{env: e, validLen: validLen}
	s.mu.Unlock()
	return e.ID, nil
}

func (s *Spool) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[id] != nil || s.reserved[id] {
		return fmt.Errorf("put message %s: %w", id, ErrExists)
	}
	s.reserved[id] = true
	return nil
}

// write creates the file of e under tmp/ and has the committer make it
// durable under msg/. It returns the file length.
func (s *Spool) write(ctx context.Context, e *Envelope, msg []byte) (int64, error) {
	head, err := encodeHead(e, msg)
	if err != nil {
		return 0, err
	}
	req := &request{
		id:      e.ID,
		tmpPath: filepath.Join(s.tmpDir, e.ID),
		msgPath: filepath.Join(s.msgDir, e.ID),
		done:    make(chan struct{}),
	}
	f, err := os.OpenFile(req.tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	_, headErr := f.Write(head)
	_, msgErr := f.Write(msg)
	if err := errors.Join(headErr, msgErr); err != nil {
		f.Close()
		os.Remove(req.tmpPath)
		return 0, fmt.Errorf("write %s: %w", req.tmpPath, err)
	}
	req.file = f

	if err := s.commit(ctx, req); err != nil {
		return 0, err
	}
	return int64(len(head) + len(msg)), nil
}

// Update appends recs to the message's file, fsyncs it and returns the
// envelope with recs applied. A record with a zero Time gets the current
// time. Update writes nothing if any record is invalid for the envelope
// (see Record); errors.Is(err, ErrNotFound) reports an unknown ID. Updates
// of one message run one at a time, while Updates of different messages
// run in parallel.
func (s *Spool) Update(id string, recs ...Record) (*Envelope, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	ent := s.lookup(id)
	if ent == nil {
		return nil, fmt.Errorf("update message %s: %w", id, ErrNotFound)
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.removed {
		return nil, fmt.Errorf("update message %s: %w", id, ErrNotFound)
	}

	env := ent.env.clone()
	now := time.Now()
	prepared := make([]Record, len(recs))
	for i, rec := range recs {
		prepared[i] = prepareRecord(rec, now)
		if err := apply(env, prepared[i]); err != nil {
			return nil, fmt.Errorf("update message %s: %w", id, err)
		}
	}
	if len(recs) == 0 {
		return env, nil
	}

	data, err := encodeRecords(prepared)
	if err != nil {
		return nil, fmt.Errorf("update message %s: %w", id, err)
	}
	if err := s.appendRecords(ent, id, data); err != nil {
		return nil, fmt.Errorf("update message %s: %w", id, err)
	}

	s.mu.Lock()
	ent.env = env
	s.mu.Unlock()
	return env.clone(), nil
}

// appendRecords writes data at ent.validLen and fsyncs the file. The
// caller holds ent.mu. After a failure the file is cut back to
// ent.validLen, now or before the next append, so a half-written record
// never sits in front of a later one.
func (s *Spool) appendRecords(ent *entry, id string, data []byte) error {
	path := filepath.Join(s.msgDir, id)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()

	if ent.truncate {
		if err := f.Truncate(ent.validLen); err != nil {
			return fmt.Errorf("cut off the records of a failed update of %s: %w", path, err)
		}
		ent.truncate = false
	}
	_, writeErr := f.WriteAt(data, ent.validLen)
	var syncErr error
	if writeErr == nil {
		syncErr = f.Sync()
	}
	if err := errors.Join(writeErr, syncErr); err != nil {
		if f.Truncate(ent.validLen) != nil {
			ent.truncate = true
		}
		return fmt.Errorf("append to %s: %w", path, err)
	}
	ent.validLen += int64(len(data))
	return nil
}

// Remove deletes the message's file and returns once the deletion is
// durable. If it returns an error after the file was unlinked, the message
// is gone from List, but a crash may bring it back.
func (s *Spool) Remove(id string) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	ent := s.lookup(id)
	if ent == nil {
		return fmt.Errorf("remove message %s: %w", id, ErrNotFound)
	}

	ent.mu.Lock()
	if ent.removed {
		ent.mu.Unlock()
		return fmt.Errorf("remove message %s: %w", id, ErrNotFound)
	}
	if err := os.Remove(filepath.Join(s.msgDir, id)); err != nil {
		ent.mu.Unlock()
		return fmt.Errorf("remove message %s: %w", id, err)
	}
	ent.removed = true
	s.mu.Lock()
	delete(s.entries, id)
	s.mu.Unlock()
	ent.mu.Unlock()

	req := &request{remove: true, id: id, done: make(chan struct{})}
	if err := s.commit(context.Background(), req); err != nil {
		return fmt.Errorf("remove message %s: %w", id, err)
	}
	return nil
}

// List returns copies of all envelopes, sorted by ID.
func (s *Spool) List() []*Envelope {
	s.mu.RLock()
	envs := make([]*Envelope, 0, len(s.entries))
	for _, ent := range s.entries {
		envs = append(envs, ent.env.clone())
	}
	s.mu.RUnlock()

	slices.SortFunc(envs, func(a, b *Envelope) int { return cmp.Compare(a.ID, b.ID) })
	return envs
}

// Get returns a copy of the envelope of id and whether id is in the spool.
func (s *Spool) Get(id string) (*Envelope, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ent := s.entries[id]
	if ent == nil {
		return nil, false
	}
	return ent.env.clone(), true
}

// Load returns a copy of the envelope of id and the message read from
// disk. If the file fails its checksum, Load moves it to corrupt/, drops
// the message from the spool and returns an error that wraps ErrCorrupt.
func (s *Spool) Load(id string) (*Envelope, []byte, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	ent := s.lookup(id)
	if ent == nil {
		return nil, nil, fmt.Errorf("load message %s: %w", id, ErrNotFound)
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.removed {
		return nil, nil, fmt.Errorf("load message %s: %w", id, ErrNotFound)
	}

	path := filepath.Join(s.msgDir, id)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load message %s: %w", id, err)
	}
	sf, err := readSpoolFile(f, true)
	f.Close()
	if errors.Is(err, ErrCorrupt) {
		ent.removed = true
		s.mu.Lock()
		delete(s.entries, id)
		s.mu.Unlock()
		if qerr := s.quarantine(id, err); qerr != nil {
			s.log.Error("cannot move a corrupt spool file aside", "id", id, "error", qerr)
		}
		return nil, nil, fmt.Errorf("load message %s: %w", id, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load message %s: %w", id, err)
	}

	s.mu.RLock()
	env := ent.env.clone()
	s.mu.RUnlock()
	return env, sf.msg, nil
}

func (s *Spool) lookup(id string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries[id]
}

// Close waits for the running Puts, Updates, Removes and Loads, stops the
// committer and releases the lock on the directory. Later calls of those
// methods return ErrClosed, while List and Get keep returning the last
// state.
func (s *Spool) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopCommitter()
	return errors.Join(s.msgDirFile.Close(), s.lock.Close())
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

// SyncFilesystemSupported returns nil when Options.SyncFilesystem can be
// used here, and otherwise an error that gives the reason.
func SyncFilesystemSupported() error {
	return checkSyncfs()
}
