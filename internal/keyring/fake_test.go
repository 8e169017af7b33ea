package keyring

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeKeychain is a map-backed, goroutine-safe Keychain. With err set every
// call fails; with block set every call waits until it is closed.
type fakeKeychain struct {
	mu    sync.Mutex
	items map[string]string
	err   error
	block chan struct{}
	gets  int
	sets  int
	dels  int
}

func newFakeKeychain() *fakeKeychain { return &fakeKeychain{items: map[string]string{}} }

func (f *fakeKeychain) enter() error {
	f.mu.Lock()
	block, err := f.block, f.err
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	return err
}

func (f *fakeKeychain) Get(_ context.Context, account string) (string, error) {
	if err := f.enter(); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	s, ok := f.items[account]
	if !ok {
		return "", ErrNotFound
	}
	return s, nil
}

func (f *fakeKeychain) Set(_ context.Context, account, secret string) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	f.items[account] = secret
	return nil
}

func (f *fakeKeychain) Delete(_ context.Context, account string) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dels++
	if _, ok := f.items[account]; !ok {
		return ErrNotFound
	}
	delete(f.items, account)
	return nil
}

func (f *fakeKeychain) item(account string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.items[account]
	return s, ok
}

func (f *fakeKeychain) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets + f.sets + f.dels
}

// fakeKeyCache stands in for the kernel keyring.
type fakeKeyCache struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func newFakeKeyCache() *fakeKeyCache { return &fakeKeyCache{keys: map[string][]byte{}} }

func (c *fakeKeyCache) get(desc string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[desc]
	return bytes.Clone(k), ok
}

func (c *fakeKeyCache) put(desc string, key []byte, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys[desc] = bytes.Clone(key)
}

func (c *fakeKeyCache) remove(desc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, desc)
}

// warnings collects what a Store reports.
type warnings struct {
	mu   sync.Mutex
	errs []error
}

func (w *warnings) add(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

func (w *warnings) list() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

// env is a Getenv over a map.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// testStore opens a keyring-mode store over a fake keychain in a fresh
// directory; edit adjusts the options first.
func testStore(t *testing.T, edit func(*Options)) (*Store, *fakeKeychain, *warnings) {
	t.Helper()
	kc := newFakeKeychain()
	w := &warnings{}
	opts := Options{
		Getenv:   env(),
		Dir:      t.TempDir(),
		Keychain: kc,
		Warn:     w.add,
		Timeout:  2 * time.Second,
	}
	if edit != nil {
		edit(&opts)
	}
	if f, ok := opts.Keychain.(*fakeKeychain); ok {
		kc = f
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, kc, w
}

// reopen opens another Store over the same options, as the next process
// would: nothing is shared in memory.
func reopen(t *testing.T, s *Store, edit func(*Options)) (*Store, *warnings) {
	t.Helper()
	w := &warnings{}
	opts := Options{Getenv: env(), Dir: s.base, Name: s.name, Keychain: s.keychain, Warn: w.add, Timeout: s.timeout, Mode: s.mode}
	if !s.explicit {
		opts.Mode = ""
	}
	if _, ok := s.keys.(noKeyCache); !ok {
		opts.keyCache = s.keys
	}
	if edit != nil {
		edit(&opts)
	}
	s2, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s2, w
}

func wantOneWarning[T error](t *testing.T, w *warnings) T {
	t.Helper()
	errs := w.list()
	if len(errs) != 1 {
		t.Fatalf("got %d warnings, want 1: %v", len(errs), errs)
	}
	var target T
	if !errors.As(errs[0], &target) {
		t.Fatalf("warning %T (%v) is not a %T", errs[0], errs[0], target)
	}
	return target
}
