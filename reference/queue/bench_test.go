package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtp-toolkit/amtp/reference/queue"
)

// The benchmarks write to b.TempDir(), which is under $TMPDIR (default
// /tmp). Set TMPDIR to a directory on the disk you want to measure: on a
// tmpfs, fsync does nothing and the numbers mean nothing. Each reports
// msgs/s, the durable messages stored per second of wall time.

var benchMessage = bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB

// runConcurrently calls op b.N times in total from the given number of
// goroutines and reports the rate.
func runConcurrently(b *testing.B, goroutines int, op func(n int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range goroutines {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				if err := op(n); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPut measures durable Puts of 1 KiB messages, with the default
// fsync of every new file and with Options.SyncFilesystem.
func BenchmarkPut(b *testing.B) {
	modes := []struct {
		name string
		opts queue.Options
	}{
		{"fsync", queue.Options{}},
		{"syncfs", queue.Options{SyncFilesystem: true}},
	}
	for _, m := range modes {
		for _, goroutines := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", m.name, goroutines), func(b *testing.B) {
				opts := m.opts
				opts.Logger = slog.New(slog.DiscardHandler)
				s, err := queue.Open(b.TempDir(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()

				runConcurrently(b, goroutines, func(int64) error {
					_, err := s.Put(context.Background(), newEnvelope("bob@example.net"), benchMessage)
					return err
				})
				b.ReportMetric(float64(b.N)/float64(s.Commits()), "msgs/commit")
			})
		}
	}
}

// BenchmarkBaseline measures the same durability without a spool: per
// message, create a file under tmp/, write 1 KiB, fsync, close, rename it
// into msg/ and fsync msg/.
func BenchmarkBaseline(b *testing.B) {
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			dir := b.TempDir()
			tmpDir := filepath.Join(dir, "tmp")
			msgDir := filepath.Join(dir, "msg")
			for _, d := range []string{tmpDir, msgDir} {
				if err := os.Mkdir(d, 0o750); err != nil {
					b.Fatal(err)
				}
			}

			runConcurrently(b, goroutines, func(n int64) error {
				name := strconv.FormatInt(n, 10)
				return writeDurably(filepath.Join(tmpDir, name), filepath.Join(msgDir, name), benchMessage)
			})
		})
	}
}

func writeDurably(tmpPath, msgPath string, data []byte) error {
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, writeErr := f.Write(data)
	syncErr := f.Sync()
	closeErr := f.Close()
	if err := errors.Join(writeErr, syncErr, closeErr); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, msgPath); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(msgPath))
	if err != nil {
		return err
	}
	syncErr = d.Sync()
	return errors.Join(syncErr, d.Close())
}
