// Package keyring stores named byte blobs (token caches) for the credential
// helpers, encrypted at rest.
//
// OS keychain items are small (about 3 KB on macOS, 2,560 bytes on Windows)
// while a token cache exceeds 10 KB, so the keychain (Secret Service,
// Keychain or Credential Manager, through go-keyring) holds only one random
// 256-bit key per cache name, and every blob is an AES-256-GCM-sealed file in
// the cache directory. On Linux the key is also kept for some hours in the
// kernel user keyring, so a warm process reads it with two syscalls instead
// of a D-Bus round trip.
//
// ENTRA_TOKEN_CACHE selects the storage: keyring (the default), file
// (plaintext 0600 files, an explicit opt-in) or memory. When the keychain
// cannot be reached and the user chose nothing, blobs live in memory for the
// process and the store warns once. ENTRA_CACHE_NAME isolates caches and
// ENTRA_CACHE_DIR moves the files. Store.Lock is the cross-process lock
// for read-modify-write cycles of the layers above.
package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Mode is where blobs live (ENTRA_TOKEN_CACHE).
type Mode string

const (
	// ModeKeyring: files sealed with a key held in the OS keychain.
	ModeKeyring Mode = "keyring"
	// ModeFile: plaintext files (0600), no keychain. Opt-in only.
	ModeFile Mode = "file"
	// ModeMemory: nothing leaves the process.
	ModeMemory Mode = "memory"
)

// Environment variables read through Options.Getenv.
const (
	EnvTokenCache = "ENTRA_TOKEN_CACHE"
	EnvCacheName  = "ENTRA_CACHE_NAME"
	EnvCacheDir   = "ENTRA_CACHE_DIR"
)

// DefaultCacheName is the cache name when ENTRA_CACHE_NAME is unset.
const DefaultCacheName = "entra"

// kernelKeyTTL bounds how long a key outlives its last keychain read in the
// kernel keyring: after it, one call pays the keychain again.
const kernelKeyTTL = 8 * time.Hour

// errNotOurKey: the keychain item does not hold a key; it is replaced.
var errNotOurKey = fmt.Errorf("%w: item is not a token cache key", ErrNotFound)

// ErrInsecurePath: a cache directory or file that another user could
// change; the store refuses to use it.
var ErrInsecurePath = errors.New("insecure token cache location")

// UnreadableError is passed to Options.Warn, once per blob, when a cache
// file cannot be used: it is then treated as empty and rewritten by the next
// Put.
type UnreadableError struct {
	Name   string // blob name
	Path   string // file
	Reason string // e.g. "truncated", "written by a newer version (…)"
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("token cache file %s is %s; ignoring it (it is rewritten on the next save)", e.Path, e.Reason)
}

// FallbackError is passed to Options.Warn, once per Store, when the
// keychain cannot be reached and blobs are kept in memory instead.
type FallbackError struct {
	Err error // matches ErrKeychainUnavailable
}

func (e *FallbackError) Error() string {
	return fmt.Sprintf("%v; keeping tokens in memory for this process only: %s, or set %s=file to keep them in unencrypted files (%s=memory silences this)",
		e.Err, unavailableHint, EnvTokenCache, EnvTokenCache)
}

func (e *FallbackError) Unwrap() error { return e.Err }

// Options configure Open. The zero value reads the process environment and
// uses the OS keychain.
type Options struct {
	// Getenv looks up ENTRA_TOKEN_CACHE, ENTRA_CACHE_NAME, ENTRA_CACHE_DIR;
	// nil means os.Getenv.
	Getenv func(string) string
	// Mode overrides ENTRA_TOKEN_CACHE; either counts as the user's choice,
	// so an unreachable keychain is then an error, not a memory fallback.
	Mode Mode
	// Name overrides ENTRA_CACHE_NAME (default "entra").
	Name string
	// Dir overrides ENTRA_CACHE_DIR (default os.UserCacheDir()/entra).
	Dir string
	// Keychain holds the keys; nil means the OS keychain, cached in the
	// Linux kernel keyring. An injected Keychain (a fake) is used alone.
	Keychain Keychain
	// Timeout bounds each keychain call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Now is the clock (stale temporary files); nil means time.Now.
	Now func() time.Time
	// Warn receives *UnreadableError and *FallbackError, each once; nil
	// prints them on os.Stderr. Warnings never contain keys or blob data.
	Warn func(error)

	// keyCache overrides the kernel keyring (tests only).
	keyCache keyCache
}

// keyCache holds keys between processes without a keychain round trip.
type keyCache interface {
	get(desc string) ([]byte, bool)
	put(desc string, key []byte, ttl time.Duration)
	remove(desc string)
}

type noKeyCache struct{}

func (noKeyCache) get(string) ([]byte, bool)         { return nil, false }
func (noKeyCache) put(string, []byte, time.Duration) {}
func (noKeyCache) remove(string)                     {}

// Store gets and puts named blobs of one cache. It is safe for concurrent
// use; Lock serialises read-modify-write cycles across processes.
type Store struct {
	mode     Mode
	explicit bool   // the user chose the mode: report errors, never fall back
	name     string // cache name: keychain account, directory, kernel key
	base     string // cache directory
	dir      string // base/name; "" in memory mode
	keychain Keychain
	keys     keyCache
	timeout  time.Duration
	now      func() time.Time
	warn     func(error)

	keyMu       sync.Mutex // one key load at a time: one keychain trip per Store
	key         []byte
	keyKernel   bool // key came from the kernel keyring and was not checked against the keychain
	keyReplaced bool // this Store made a new key while sealed files existed: they are unreadable

	mu       sync.Mutex
	fellBack bool              // keychain unreachable: behave as memory
	mem      map[string][]byte // memory mode and fallback
	warned   map[string]bool   // blobs whose unreadable file was reported
	dirOK    bool              // directories created and checked
	memLocks map[string]chan struct{}
}

// Open resolves the configuration; it touches neither the keychain nor the
// disk, so it is cheap and cannot hang.
func Open(opts Options) (*Store, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	s := &Store{
		mode:     opts.Mode,
		explicit: opts.Mode != "",
		name:     opts.Name,
		base:     opts.Dir,
		keychain: opts.Keychain,
		keys:     opts.keyCache,
		timeout:  opts.Timeout,
		now:      opts.Now,
		warn:     opts.Warn,
		mem:      map[string][]byte{},
		warned:   map[string]bool{},
		memLocks: map[string]chan struct{}{},
	}
	if s.mode == "" {
		s.mode = Mode(getenv(EnvTokenCache))
		s.explicit = s.mode != ""
	}
	switch s.mode {
	case "":
		s.mode = ModeKeyring
	case ModeKeyring, ModeFile, ModeMemory:
	default:
		return nil, fmt.Errorf("%s=%s: want %s, %s or %s", EnvTokenCache, s.mode, ModeKeyring, ModeFile, ModeMemory)
	}
	if s.name == "" {
		s.name = getenv(EnvCacheName)
	}
	if s.name == "" {
		s.name = DefaultCacheName
	}
	if err := checkName(s.name); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvCacheName, err)
	}
	if s.mode != ModeMemory {
		if s.base == "" {
			s.base = getenv(EnvCacheDir)
		}
		if s.base == "" {
			ucd, err := os.UserCacheDir()
			if err != nil {
				return nil, fmt.Errorf("no directory for the token cache (%v): set %s", err, EnvCacheDir)
			}
			s.base = filepath.Join(ucd, "entra")
		}
		abs, err := filepath.Abs(s.base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCacheDir, err)
		}
		s.base = abs
		s.dir = filepath.Join(s.base, s.name)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.keychain == nil {
		s.keychain = OSKeychain{Timeout: s.timeout}
		if s.keys == nil {
			s.keys = kernelKeyring{}
		}
	}
	if s.keys == nil {
		s.keys = noKeyCache{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.warn == nil {
		s.warn = func(err error) { fmt.Fprintf(os.Stderr, "warning: %v\n", err) }
	}
	return s, nil
}

// Mode is where blobs live now: ModeMemory after a keychain fallback.
func (s *Store) Mode() Mode {
	if s.inMemory() {
		return ModeMemory
	}
	return s.mode
}

// Name is the cache name.
func (s *Store) Name() string { return s.name }

// Dir is the directory holding this cache's files ("" in memory mode).
func (s *Store) Dir() string { return s.dir }

// Get returns the blob, or nil when there is none. A file that cannot be
// used (damaged, truncated, from a newer version, sealed with a lost key)
// reads as nil and is reported once through Options.Warn.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.inMemory() {
		return s.memGet(name), nil
	}
	if err := s.ensureDir(false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	path := s.path(name)
	raw, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no keychain trip for a blob that was never written
	}
	if err != nil {
		return nil, err
	}
	if s.mode == ModeFile {
		data, err := decodePlain(name, raw)
		if err != nil {
			s.unreadable(name, path, err.Error())
			return nil, nil
		}
		return data, nil
	}
	// Reject what the header alone condemns before paying for the key.
	if _, err := parseHeader(raw, kindSealed); err != nil {
		s.unreadable(name, path, err.Error())
		return nil, nil
	}
	key, err := s.loadKey(ctx)
	if err != nil {
		if s.fallBack(err) {
			return s.memGet(name), nil
		}
		return nil, err
	}
	data, err := unseal(key, name, raw)
	if errors.Is(err, errUndecryptable) {
		if fresh := s.recheckKey(ctx, key); fresh != nil {
			data, err = unseal(fresh, name, raw)
		}
	}
	if err != nil {
		reason := err.Error()
		if errors.Is(err, errUndecryptable) && s.replacedKey() {
			reason = "sealed with a key that is no longer in the keychain"
		}
		s.unreadable(name, path, reason)
		return nil, nil
	}
	return data, nil
}

// Put stores data under name, replacing any earlier blob atomically.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.inMemory() {
		s.memPut(name, data)
		return nil
	}
	if err := s.ensureDir(true); err != nil {
		return err
	}
	var out []byte
	if s.mode == ModeFile {
		out = encodePlain(name, data)
	} else {
		key, err := s.loadKey(ctx)
		if err != nil {
			if s.fallBack(err) {
				s.memPut(name, data)
				return nil
			}
			return err
		}
		if out, err = seal(key, name, data); err != nil {
			return fmt.Errorf("sealing token cache %s: %w", name, err)
		}
	}
	path := s.path(name)
	if err := writeAtomic(path, out); err != nil {
		return fmt.Errorf("writing token cache: %w", err)
	}
	removeStaleTemps(path, s.now())
	s.mu.Lock()
	delete(s.warned, name) // a file damaged later is reported again
	s.mu.Unlock()
	return nil
}

// Delete removes one blob; a missing blob is not an error. It needs no key,
// so it works even when the keychain is unreachable.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.mem, name)
	delete(s.warned, name)
	s.mu.Unlock()
	if s.dir == "" {
		return nil
	}
	var errs []error
	// Both kinds: a blob written before a change of ENTRA_TOKEN_CACHE goes too.
	for _, ext := range []string{sealedExt, plainExt} {
		if err := os.Remove(filepath.Join(s.dir, name+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveAll deletes every blob of the cache: its directory, and in keyring
// mode its keychain item and kernel-keyring key. It tries all three and
// reports every failure.
func (s *Store) RemoveAll(ctx context.Context) error {
	s.mu.Lock()
	clear(s.mem)
	clear(s.warned)
	s.dirOK = false
	s.mu.Unlock()
	var errs []error
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if s.mode == ModeKeyring {
		s.keyMu.Lock()
		s.key, s.keyKernel, s.keyReplaced = nil, false, false
		s.keyMu.Unlock()
		s.keys.remove(s.kernelDesc())
		err := s.keychainCall(ctx, "delete", func(ctx context.Context) error { return s.keychain.Delete(ctx, s.name) })
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) path(name string) string {
	if s.mode == ModeFile {
		return filepath.Join(s.dir, name+plainExt)
	}
	return filepath.Join(s.dir, name+sealedExt)
}

func (s *Store) kernelDesc() string { return "entra:" + s.name }

// ensureDir checks (and with create, makes) the cache directories once per
// Store. Both the base and the cache's own directory must be ours and not
// writable by others: whoever can write there can swap our files.
func (s *Store) ensureDir(create bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirOK {
		return nil
	}
	if create {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return fmt.Errorf("creating token cache directory: %w", err)
		}
	}
	for _, d := range []string{s.base, s.dir} {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("token cache directory %s is not a directory", d)
		}
		if err := checkDir(d, fi); err != nil {
			return err
		}
	}
	s.dirOK = true
	return nil
}

// loadKey returns the cache's key: from this Store, the kernel keyring, the
// keychain, or newly made, in that order of cost.
func (s *Store) loadKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	if k, ok := s.keys.get(s.kernelDesc()); ok && len(k) == keyLen {
		s.key, s.keyKernel = k, true
		return k, nil
	}
	k, err := s.keychainKey(ctx)
	if errors.Is(err, errNotOurKey) {
		s.warn(fmt.Errorf("keychain item %q of %s is not a token cache key; replacing it", s.name, Service))
	}
	if errors.Is(err, ErrNotFound) {
		k, err = s.createKey(ctx)
	}
	if err != nil {
		return nil, err
	}
	s.keys.put(s.kernelDesc(), k, kernelKeyTTL)
	s.key = k
	return k, nil
}

// keychainKey reads and decodes the keychain item. An item that is not a
// key of ours reads as missing, so it is replaced.
func (s *Store) keychainKey(ctx context.Context) ([]byte, error) {
	var enc string
	err := s.keychainCall(ctx, "read", func(ctx context.Context) (err error) {
		enc, err = s.keychain.Get(ctx, s.name)
		return err
	})
	if err != nil {
		return nil, err
	}
	k, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(k) != keyLen {
		return nil, errNotOurKey
	}
	return k, nil
}

// createKey makes a new key under a file lock, so two processes starting
// at once do not each store a key and seal files the other cannot open.
func (s *Store) createKey(ctx context.Context) ([]byte, error) {
	if err := s.ensureDir(true); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(s.dir, ".key"+lockExt))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if k, err := s.keychainKey(ctx); !errors.Is(err, ErrNotFound) {
		return k, err // another process made it while we waited
	}
	k := make([]byte, keyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(k)
	if err := s.keychainCall(ctx, "write", func(ctx context.Context) error { return s.keychain.Set(ctx, s.name, enc) }); err != nil {
		return nil, err
	}
	s.keyReplaced = hasSealedFiles(s.dir)
	return k, nil
}

// recheckKey is called when a file does not open with a key taken from the
// kernel keyring: that key may be stale (the keychain item was replaced
// meanwhile). It asks the keychain once per Store and returns the
// keychain's key when it differs, else nil.
func (s *Store) recheckKey(ctx context.Context, used []byte) []byte {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if !s.keyKernel || !bytes.Equal(s.key, used) {
		return nil
	}
	s.keyKernel = false
	k, err := s.keychainKey(ctx)
	if err != nil || bytes.Equal(k, used) {
		return nil
	}
	s.keys.put(s.kernelDesc(), k, kernelKeyTTL)
	s.key = k
	return k
}

func (s *Store) replacedKey() bool {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.keyReplaced
}

func hasSealedFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*"+sealedExt))
	return len(m) > 0
}

// fallBack switches to memory when the keychain is unreachable and the
// user chose nothing; it reports whether it did.
func (s *Store) fallBack(err error) bool {
	if s.explicit || !errors.Is(err, ErrKeychainUnavailable) {
		return false
	}
	s.mu.Lock()
	first := !s.fellBack
	s.fellBack = true
	s.mu.Unlock()
	if first {
		s.warn(&FallbackError{Err: err})
	}
	return true
}

func (s *Store) inMemory() bool {
	if s.mode == ModeMemory {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fellBack
}

func (s *Store) unreadable(name, path, reason string) {
	s.mu.Lock()
	first := !s.warned[name]
	s.warned[name] = true
	s.mu.Unlock()
	if first {
		s.warn(&UnreadableError{Name: name, Path: path, Reason: reason})
	}
}

func (s *Store) memGet(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.mem[name])
}

func (s *Store) memPut(name string, data []byte) {
	if data == nil {
		data = []byte{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mem[name] = bytes.Clone(data)
}

// checkName keeps names usable as file names, keychain accounts and kernel
// key descriptions on every OS, and rules out path tricks. Callers with
// other names (URLs, tenant ids) map them first.
func checkName(name string) error {
	ok := len(name) > 0 && len(name) <= 128 && name[0] != '.'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("invalid cache name %q: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'", name)
	}
	return nil
}
