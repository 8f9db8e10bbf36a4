package queue

// Test hooks: the commit counters and the ID generator.

// Commits returns the number of batches committed.
func (s *Spool) Commits() int64 { return s.commits.Load() }

// DirSyncs returns the number of fsyncs of msg/.
func (s *Spool) DirSyncs() int64 { return s.dirSyncs.Load() }

// MaxBatchSeen returns the size of the largest batch committed.
func (s *Spool) MaxBatchSeen() int64 { return s.maxBatchSeen.Load() }

// NewIDFunc returns a function that makes IDs as Put does.
func NewIDFunc() func() string {
	var g idGenerator
	return g.next
}
