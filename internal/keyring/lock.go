package keyring

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Backoff between lock attempts: short at first, since the holder is
// usually another helper process doing a read-modify-write of a few ms.
const (
	lockFirstDelay = time.Millisecond
	lockMaxDelay   = 50 * time.Millisecond
)

// Lock takes the exclusive lock called name of this cache, waiting until ctx
// is done; unlock releases it. Across processes it is a file lock
// (name.lock in the cache directory); separate Lock calls in one process
// exclude each other too. In memory mode only goroutines of this process
// need excluding. The lock file stays (removing it would let a waiter lock
// an unlinked file while a newcomer locks a fresh one), until RemoveAll.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if s.mode == ModeMemory {
		return s.memLock(ctx, name)
	}
	if err := s.ensureDir(true); err != nil {
		return nil, err
	}
	return lockFile(ctx, filepath.Join(s.dir, name+lockExt))
}

// lockFile polls a non-blocking flock with backoff: flock(2) itself cannot
// be given a deadline.
func lockFile(ctx context.Context, path string) (func(), error) {
	fl := flock.New(path) // created 0600
	delay := lockFirstDelay
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if ok {
			return func() { _ = fl.Unlock() }, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, lockMaxDelay)
	}
}

func (s *Store) memLock(ctx context.Context, name string) (func(), error) {
	s.mu.Lock()
	ch, ok := s.memLocks[name]
	if !ok {
		ch = make(chan struct{}, 1)
		s.memLocks[name] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		var once sync.Once // a second unlock must not release someone else's lock
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for lock %s: %w", name, ctx.Err())
	}
}
