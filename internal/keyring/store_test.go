package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func mustPut(t *testing.T, s *Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, name, data); err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
}

func mustGet(t *testing.T, s *Store, name string) []byte {
	t.Helper()
	data, err := s.Get(ctx, name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return data
}

func TestRoundTrip(t *testing.T) {
	s, kc, w := testStore(t, nil)
	if got := mustGet(t, s, "msal"); got != nil {
		t.Fatalf("Get before Put = %q, want nil", got)
	}
	if kc.calls() != 0 {
		t.Errorf("Get of a missing blob asked the keychain %d times", kc.calls())
	}
	mustPut(t, s, "msal", []byte("first"))
	mustPut(t, s, "msal", []byte("second"))
	mustPut(t, s, "other", []byte{})
	if got := mustGet(t, s, "msal"); string(got) != "second" {
		t.Fatalf("Get = %q", got)
	}
	if got := mustGet(t, s, "other"); got == nil || len(got) != 0 {
		t.Fatalf("empty blob read back as %#v, want empty non-nil", got)
	}
	// The next process reads the same blobs through the keychain's key.
	s2, w2 := reopen(t, s, nil)
	if got := mustGet(t, s2, "msal"); string(got) != "second" {
		t.Fatalf("second store: Get = %q", got)
	}
	if len(w.list())+len(w2.list()) != 0 {
		t.Fatalf("warnings: %v %v", w.list(), w2.list())
	}
	if s.Mode() != ModeKeyring || s.Name() != DefaultCacheName || s.Dir() != filepath.Join(s.base, DefaultCacheName) {
		t.Fatalf("Mode, Name, Dir = %s, %s, %s", s.Mode(), s.Name(), s.Dir())
	}
}

func TestFilesAreEncrypted(t *testing.T) {
	s, kc, w := testStore(t, nil)
	secret := []byte(`{"AccessToken":{"secret":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.signature"}}`)
	mustPut(t, s, "msal", secret)
	raw, err := os.ReadFile(filepath.Join(s.Dir(), "msal"+sealedExt))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("ENTC\x01\x01")) {
		t.Fatalf("header = %q", raw[:6])
	}
	item, ok := kc.item(DefaultCacheName)
	if !ok {
		t.Fatal("no keychain item under the cache name")
	}
	key, err := base64.StdEncoding.DecodeString(item)
	if err != nil || len(key) != 32 {
		t.Fatalf("keychain item is not a 256-bit key: %d bytes, %v", len(key), err)
	}
	for _, leak := range [][]byte{secret, []byte("eyJ0eXAi"), []byte("AccessToken"), key, []byte(item)} {
		if bytes.Contains(raw, leak) {
			t.Fatalf("file contains %q", leak)
		}
	}
	if len(w.list()) != 0 {
		t.Fatal(w.list())
	}
}

// A file that cannot be used reads as empty, is reported once, and is
// replaced by the next Put.
func TestUnreadableFiles(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, raw []byte) []byte
		reason string
	}{
		{"truncated", func(_ *testing.T, _ string, raw []byte) []byte { return raw[:len(raw)/2] }, "truncated"},
		{"truncated tail", func(_ *testing.T, _ string, raw []byte) []byte { return raw[:len(raw)-3] }, "cannot be decrypted"},
		{"truncated header", func(_ *testing.T, _ string, raw []byte) []byte { return raw[:3] }, "truncated"},
		{"empty", func(_ *testing.T, _ string, raw []byte) []byte { return nil }, "truncated"},
		{"corrupted", func(_ *testing.T, _ string, raw []byte) []byte {
			raw[len(raw)-20] ^= 0x55
			return raw
		}, "cannot be decrypted"},
		{"newer version", func(_ *testing.T, _ string, raw []byte) []byte {
			raw[4] = formatVersion + 1
			return raw
		}, "newer version"},
		{"header tampered", func(_ *testing.T, _ string, raw []byte) []byte {
			raw[5] = kindPlain
			return raw
		}, "unexpected kind"},
		{"not ours", func(_ *testing.T, _ string, raw []byte) []byte { return []byte("{\"json\": true}") }, "not an entra cache file"},
		{"swapped", func(t *testing.T, path string, _ []byte) []byte {
			other, err := os.ReadFile(filepath.Join(filepath.Dir(path), "other"+sealedExt))
			if err != nil {
				t.Fatal(err)
			}
			return other
		}, "cannot be decrypted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, w := testStore(t, nil)
			mustPut(t, s, "msal", []byte("the good blob"))
			mustPut(t, s, "other", []byte("another blob"))
			path := filepath.Join(s.Dir(), "msal"+sealedExt)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.damage(t, path, raw), 0o600); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if got := mustGet(t, s, "msal"); got != nil {
					t.Fatalf("Get = %q, want nil", got)
				}
			}
			u := wantOneWarning[*UnreadableError](t, w)
			if u.Name != "msal" || u.Path != path || !strings.Contains(u.Reason, c.reason) {
				t.Fatalf("warning = %+v, want reason with %q", u, c.reason)
			}
			if msg := u.Error(); strings.Contains(msg, "the good blob") || !strings.Contains(msg, path) {
				t.Fatalf("warning text: %s", msg)
			}
			// The other blob is untouched, and the next Put rewrites this one.
			if got := mustGet(t, s, "other"); string(got) != "another blob" {
				t.Fatalf("other = %q", got)
			}
			mustPut(t, s, "msal", []byte("rewritten"))
			if got := mustGet(t, s, "msal"); string(got) != "rewritten" {
				t.Fatalf("after Put: %q", got)
			}
			// Damaged again after a good write: reported again.
			if err := os.WriteFile(path, []byte("ENTC"), 0o600); err != nil {
				t.Fatal(err)
			}
			mustGet(t, s, "msal")
			if n := len(w.list()); n != 2 {
				t.Fatalf("%d warnings after a second damage, want 2", n)
			}
		})
	}
}

// The keychain lost the key (another machine's home, a wiped keyring): a
// new key is made and the old files read as empty.
func TestMissingKeyMakesANewKey(t *testing.T) {
	s, kc, _ := testStore(t, nil)
	mustPut(t, s, "msal", []byte("sealed with the old key"))
	old, _ := kc.item(DefaultCacheName)
	if err := kc.Delete(ctx, DefaultCacheName); err != nil {
		t.Fatal(err)
	}

	s2, w2 := reopen(t, s, nil)
	if got := mustGet(t, s2, "msal"); got != nil {
		t.Fatalf("Get = %q, want nil", got)
	}
	u := wantOneWarning[*UnreadableError](t, w2)
	if !strings.Contains(u.Reason, "no longer in the keychain") {
		t.Fatalf("reason = %q", u.Reason)
	}
	fresh, ok := kc.item(DefaultCacheName)
	if !ok || fresh == old {
		t.Fatal("no new key in the keychain")
	}
	mustPut(t, s2, "msal", []byte("sealed with the new key"))
	s3, w3 := reopen(t, s, nil)
	if got := mustGet(t, s3, "msal"); string(got) != "sealed with the new key" {
		t.Fatalf("Get = %q", got)
	}
	if len(w3.list()) != 0 {
		t.Fatal(w3.list())
	}
}

func TestKeychainItemThatIsNotAKeyIsReplaced(t *testing.T) {
	s, kc, w := testStore(t, nil)
	if err := kc.Set(ctx, DefaultCacheName, "hunter2"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "msal", []byte("data"))
	wantOneWarning[error](t, w)
	if item, _ := kc.item(DefaultCacheName); item == "hunter2" {
		t.Fatal("item not replaced")
	}
	if strings.Contains(w.list()[0].Error(), "hunter2") {
		t.Fatal("warning shows the item's content")
	}
}

// A process killed while writing leaves temporary files, never a torn
// cache file.
func TestAtomicWrite(t *testing.T) {
	now := time.Now()
	s, _, w := testStore(t, func(o *Options) { o.Now = func() time.Time { return now } })
	mustPut(t, s, "msal", []byte("version 1"))

	// What a writer killed at two points leaves: an empty temporary file
	// (killed after create) and a half-written one (killed mid-write).
	sealed, err := seal(s.key, "msal", []byte("version 2, which never landed"))
	if err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(s.Dir(), tempPrefix("msal"+sealedExt)+"111")
	partial := filepath.Join(s.Dir(), tempPrefix("msal"+sealedExt)+"222")
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(partial, sealed[:len(sealed)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	s2, w2 := reopen(t, s, nil)
	if got := mustGet(t, s2, "msal"); string(got) != "version 1" {
		t.Fatalf("after a crash: %q", got)
	}

	// A young temporary file may belong to a live writer: kept.
	mustPut(t, s, "msal", []byte("version 3"))
	for _, f := range []string{stray, partial} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("young temporary file removed: %v", err)
		}
	}
	// An old one is a leftover: the next Put removes it.
	now = now.Add(2 * staleTemp)
	mustPut(t, s, "msal", []byte("version 4"))
	for _, f := range []string{stray, partial} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale temporary file %s not removed: %v", f, err)
		}
	}
	if got := mustGet(t, s2, "msal"); string(got) != "version 4" {
		t.Fatalf("Get = %q", got)
	}
	entries, _ := os.ReadDir(s.Dir())
	for _, e := range entries {
		if e.Name() != "msal"+sealedExt && e.Name() != ".key"+lockExt {
			t.Errorf("unexpected file %s", e.Name())
		}
	}
	if len(w.list())+len(w2.list()) != 0 {
		t.Fatal(w.list(), w2.list())
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix permissions")
	}
	s, _, _ := testStore(t, nil)
	mustPut(t, s, "msal", []byte("data"))
	for path, want := range map[string]os.FileMode{
		s.Dir():                             0o700 | os.ModeDir,
		filepath.Join(s.Dir(), "msal.enc"):  0o600,
		filepath.Join(s.Dir(), ".key.lock"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	t.Run("default directory is created 0700", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "a", "b")
		s, _, _ := testStore(t, func(o *Options) { o.Dir = ""; o.Getenv = env(EnvCacheDir, base) })
		mustPut(t, s, "msal", []byte("data"))
		for _, d := range []string{base, s.Dir()} {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v", d, fi.Mode(), err)
			}
		}
	})

	for _, which := range []string{"base", "cache"} {
		t.Run("refuses a world-writable "+which+" directory", func(t *testing.T) {
			s, _, _ := testStore(t, nil)
			mustPut(t, s, "msal", []byte("data"))
			dir := s.base
			if which == "cache" {
				dir = s.Dir()
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			s2, _ := reopen(t, s, nil)
			_, err := s2.Get(ctx, "msal")
			if !errors.Is(err, ErrInsecurePath) || !strings.Contains(err.Error(), "chmod go-w") {
				t.Fatalf("Get: err = %v, want ErrInsecurePath with what to do", err)
			}
			if err := s2.Put(ctx, "msal", []byte("x")); !errors.Is(err, ErrInsecurePath) {
				t.Fatalf("Put: err = %v", err)
			}
			if _, err := s2.Lock(ctx, "msal"); !errors.Is(err, ErrInsecurePath) {
				t.Fatalf("Lock: err = %v", err)
			}
		})
	}

	t.Run("refuses a file owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file away")
		}
		s, _, _ := testStore(t, nil)
		mustPut(t, s, "msal", []byte("data"))
		if err := os.Chown(filepath.Join(s.Dir(), "msal.enc"), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "msal"); !errors.Is(err, ErrInsecurePath) || !strings.Contains(err.Error(), "uid 4242") {
			t.Fatalf("err = %v", err)
		}
		if err := os.Chown(s.Dir(), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		s2, _ := reopen(t, s, nil)
		if _, err := s2.Get(ctx, "msal"); !errors.Is(err, ErrInsecurePath) {
			t.Fatalf("directory of another user: err = %v", err)
		}
	})
}

var errNoService = errors.New("org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.secrets was not provided by any .service files")

// No keychain and no choice made: memory, one warning saying what to do.
func TestFallbackToMemory(t *testing.T) {
	kc := newFakeKeychain()
	kc.err = errNoService
	s, _, w := testStore(t, func(o *Options) { o.Keychain = kc })
	mustPut(t, s, "msal", []byte("kept in memory"))
	mustPut(t, s, "other", []byte("also"))
	if got := mustGet(t, s, "msal"); string(got) != "kept in memory" {
		t.Fatalf("Get = %q", got)
	}
	mustGet(t, s, "missing")
	if s.Mode() != ModeMemory {
		t.Fatalf("Mode = %s", s.Mode())
	}
	f := wantOneWarning[*FallbackError](t, w)
	msg := f.Error()
	for _, want := range []string{"OS keychain unavailable", "ServiceUnknown", "in memory", "ENTRA_TOKEN_CACHE=file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("warning %q lacks %q", msg, want)
		}
	}
	if !errors.Is(f, ErrKeychainUnavailable) || !errors.Is(f, errNoService) {
		t.Errorf("warning does not wrap the cause: %v", f)
	}
	if strings.Contains(msg, "kept in memory") {
		t.Error("warning shows blob data")
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) > 1 { // the key lock file at most
		t.Errorf("files written in memory mode: %v", entries)
	}
	if err := s.Delete(ctx, "msal"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "msal"); got != nil {
		t.Fatalf("after Delete: %q", got)
	}
	if got := mustGet(t, s, "other"); string(got) != "also" {
		t.Fatalf("other = %q", got)
	}
}

// A keychain the user asked for is an error when unreachable, not a silent
// downgrade.
func TestExplicitKeyringReportsUnavailable(t *testing.T) {
	for _, how := range []string{"env", "option"} {
		t.Run(how, func(t *testing.T) {
			kc := newFakeKeychain()
			kc.err = errNoService
			s, _, w := testStore(t, func(o *Options) {
				o.Keychain = kc
				if how == "env" {
					o.Getenv = env(EnvTokenCache, "keyring")
				} else {
					o.Mode = ModeKeyring
				}
			})
			err := s.Put(ctx, "msal", []byte("data"))
			if !errors.Is(err, ErrKeychainUnavailable) || !errors.Is(err, errNoService) {
				t.Fatalf("err = %v", err)
			}
			if len(w.list()) != 0 || s.Mode() != ModeKeyring {
				t.Fatalf("fell back: %v, %s", w.list(), s.Mode())
			}
		})
	}
}

// A keychain call that never returns (a locked keyring's prompt) is given
// up after the deadline.
func TestKeychainDeadline(t *testing.T) {
	blocked := func(t *testing.T) *fakeKeychain {
		kc := newFakeKeychain()
		kc.block = make(chan struct{})
		t.Cleanup(func() { close(kc.block) })
		return kc
	}
	const timeout = 150 * time.Millisecond

	t.Run("explicit keyring: error", func(t *testing.T) {
		s, _, _ := testStore(t, func(o *Options) { o.Keychain = blocked(t); o.Mode = ModeKeyring; o.Timeout = timeout })
		begin := time.Now()
		err := s.Put(ctx, "msal", []byte("data"))
		if d := time.Since(begin); d > timeout+time.Second {
			t.Fatalf("Put took %v", d)
		}
		if !errors.Is(err, ErrKeychainUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("default: memory", func(t *testing.T) {
		s, _, w := testStore(t, func(o *Options) { o.Keychain = blocked(t); o.Timeout = timeout })
		begin := time.Now()
		mustPut(t, s, "msal", []byte("data"))
		mustPut(t, s, "msal", []byte("data 2"))
		if d := time.Since(begin); d > timeout+time.Second {
			t.Fatalf("two Puts took %v", d)
		}
		wantOneWarning[*FallbackError](t, w)
		if got := mustGet(t, s, "msal"); string(got) != "data 2" {
			t.Fatalf("Get = %q", got)
		}
	})
	t.Run("caller's deadline: its own error, no fallback", func(t *testing.T) {
		s, _, w := testStore(t, func(o *Options) { o.Keychain = blocked(t); o.Timeout = time.Minute })
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		begin := time.Now()
		err := s.Put(cctx, "msal", []byte("data"))
		if d := time.Since(begin); d > timeout+time.Second {
			t.Fatalf("Put took %v", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrKeychainUnavailable) || len(w.list()) != 0 {
			t.Fatalf("err = %v, warnings %v", err, w.list())
		}
	})
	t.Run("Open does not touch the keychain", func(t *testing.T) {
		begin := time.Now()
		testStore(t, func(o *Options) { o.Keychain = blocked(t); o.Timeout = time.Minute })
		if d := time.Since(begin); d > time.Second {
			t.Fatalf("Open took %v", d)
		}
	})
}

func TestFileMode(t *testing.T) {
	s, kc, w := testStore(t, func(o *Options) { o.Getenv = env(EnvTokenCache, "file") })
	mustPut(t, s, "msal", []byte("plain token data"))
	if got := mustGet(t, s, "msal"); string(got) != "plain token data" {
		t.Fatalf("Get = %q", got)
	}
	path := filepath.Join(s.Dir(), "msal"+plainExt)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("plain token data")) {
		t.Fatalf("file mode is not plaintext: %q", raw)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if kc.calls() != 0 {
		t.Fatalf("file mode used the keychain %d times", kc.calls())
	}
	// Damage is still caught (checksum), reported once, rewritten.
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "msal")
	if got := mustGet(t, s, "msal"); got != nil {
		t.Fatalf("damaged: %q", got)
	}
	wantOneWarning[*UnreadableError](t, w)
	// A blob of the keyring mode is not read as plaintext, nor the reverse.
	k, _, _ := testStore(t, func(o *Options) { o.Dir = s.base })
	if got := mustGet(t, k, "msal"); got != nil {
		t.Fatalf("keyring mode read the plaintext file: %q", got)
	}
	if err := s.RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if kc.calls() != 0 {
		t.Fatal("RemoveAll in file mode touched the keychain")
	}
}

func TestMemoryMode(t *testing.T) {
	dir := t.TempDir()
	s, kc, w := testStore(t, func(o *Options) { o.Getenv = env(EnvTokenCache, "memory", EnvCacheDir, dir); o.Dir = "" })
	mustPut(t, s, "msal", []byte("data"))
	if got := mustGet(t, s, "msal"); string(got) != "data" {
		t.Fatalf("Get = %q", got)
	}
	got := mustGet(t, s, "msal")
	got[0] = 'X' // callers own what they get
	if got := mustGet(t, s, "msal"); string(got) != "data" {
		t.Fatalf("Get = %q after the caller changed its copy", got)
	}
	unlock, err := s.Lock(ctx, "msal")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := s.RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "msal"); got != nil {
		t.Fatalf("after RemoveAll: %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 || s.Dir() != "" {
		t.Fatalf("memory mode wrote %v", entries)
	}
	if kc.calls() != 0 || len(w.list()) != 0 {
		t.Fatal(kc.calls(), w.list())
	}
}

func TestDeleteAndRemoveAll(t *testing.T) {
	keys := newFakeKeyCache()
	s, kc, _ := testStore(t, func(o *Options) { o.keyCache = keys })
	mustPut(t, s, "a", []byte("A"))
	mustPut(t, s, "b", []byte("B"))
	unlock, err := s.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if got := mustGet(t, s, "a"); got != nil {
		t.Fatalf("a after Delete = %q", got)
	}
	if got := mustGet(t, s, "b"); string(got) != "B" {
		t.Fatalf("b = %q", got)
	}
	if _, ok := keys.get("entra:" + DefaultCacheName); !ok {
		t.Fatal("key not in the key cache")
	}

	if err := s.RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cache directory still there: %v", err)
	}
	if _, ok := kc.item(DefaultCacheName); ok {
		t.Fatal("keychain item still there")
	}
	if _, ok := keys.get("entra:" + DefaultCacheName); ok {
		t.Fatal("key still in the key cache")
	}
	if got := mustGet(t, s, "b"); got != nil {
		t.Fatalf("b after RemoveAll = %q", got)
	}
	// The store goes on working, with a new key.
	mustPut(t, s, "b", []byte("B2"))
	s2, _ := reopen(t, s, nil)
	if got := mustGet(t, s2, "b"); string(got) != "B2" {
		t.Fatalf("b = %q", got)
	}
	if err := s.RemoveAll(ctx); err != nil {
		t.Fatalf("RemoveAll of nothing: %v", err)
	}

	t.Run("keychain unreachable: files go, error says so", func(t *testing.T) {
		s, kc, _ := testStore(t, nil)
		mustPut(t, s, "a", []byte("A"))
		kc.mu.Lock()
		kc.err = errNoService
		kc.mu.Unlock()
		err := s.RemoveAll(ctx)
		if !errors.Is(err, ErrKeychainUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("files kept")
		}
	})
}

// The key cache (the kernel keyring on Linux) spares the keychain round
// trip: a second store reads the key even when the keychain fails.
func TestKeyCacheSparesTheKeychain(t *testing.T) {
	keys := newFakeKeyCache()
	s, kc, _ := testStore(t, func(o *Options) { o.keyCache = keys })
	mustPut(t, s, "msal", []byte("data"))
	before := kc.calls()
	failing := newFakeKeychain()
	failing.err = errNoService
	s2, w2 := reopen(t, s, func(o *Options) { o.Keychain = failing; o.Mode = ModeKeyring })
	if got := mustGet(t, s2, "msal"); string(got) != "data" {
		t.Fatalf("Get = %q", got)
	}
	if failing.calls() != 0 || kc.calls() != before || len(w2.list()) != 0 {
		t.Fatalf("keychain asked: %d, %d; warnings %v", failing.calls(), kc.calls()-before, w2.list())
	}
}

// A key in the key cache that no longer matches the keychain (the item was
// replaced by a process that could not reach the cache) is refreshed once.
func TestStaleCachedKeyIsRefreshed(t *testing.T) {
	s, kc, _ := testStore(t, nil)
	mustPut(t, s, "msal", []byte("sealed with the keychain's key"))
	keys := newFakeKeyCache()
	stale := make([]byte, 32)
	rand.Read(stale)
	keys.put("entra:"+DefaultCacheName, stale, time.Hour)

	s2, w2 := reopen(t, s, func(o *Options) { o.keyCache = keys })
	if got := mustGet(t, s2, "msal"); string(got) != "sealed with the keychain's key" {
		t.Fatalf("Get = %q", got)
	}
	item, _ := kc.item(DefaultCacheName)
	if cached, _ := keys.get("entra:" + DefaultCacheName); base64.StdEncoding.EncodeToString(cached) != item {
		t.Fatal("key cache not refreshed")
	}
	if len(w2.list()) != 0 {
		t.Fatal(w2.list())
	}
	// A file that is simply damaged costs one keychain trip, not one per Get.
	mustPut(t, s2, "bad", []byte("x"))
	os.WriteFile(filepath.Join(s2.Dir(), "bad.enc"), bytes.Repeat([]byte("ENTC\x01\x01"), 10), 0o600)
	n := kc.calls()
	mustGet(t, s2, "bad")
	mustGet(t, s2, "bad")
	if kc.calls() != n {
		t.Fatalf("damaged file cost %d keychain calls with a checked key", kc.calls()-n)
	}
}

func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	a, kc, _ := testStore(t, func(o *Options) { o.Dir = ""; o.Getenv = env(EnvCacheDir, dir, EnvCacheName, "work") })
	b, _, _ := testStore(t, func(o *Options) {
		o.Dir = ""
		o.Getenv = env(EnvCacheDir, dir, EnvCacheName, "home")
		o.Keychain = kc
	})
	mustPut(t, a, "msal", []byte("work tokens"))
	if got := mustGet(t, b, "msal"); got != nil {
		t.Fatalf("cache %s sees %s's blob: %q", b.Name(), a.Name(), got)
	}
	mustPut(t, b, "msal", []byte("home tokens"))
	if got := mustGet(t, a, "msal"); string(got) != "work tokens" {
		t.Fatalf("work = %q", got)
	}
	if a.Dir() != filepath.Join(dir, "work") {
		t.Fatalf("Dir = %s", a.Dir())
	}
	if _, ok := kc.item("work"); !ok {
		t.Fatal("no keychain item for cache work")
	}
	if _, ok := kc.item("home"); !ok {
		t.Fatal("no keychain item for cache home")
	}

	for _, bad := range []Options{
		{Getenv: env(EnvTokenCache, "plaintext")},
		{Getenv: env(EnvCacheName, "../escape")},
		{Getenv: env(), Name: ".hidden"},
	} {
		if _, err := Open(bad); err == nil {
			t.Errorf("Open accepted %+v", bad)
		}
	}
	if _, err := Open(Options{Getenv: env(EnvTokenCache, "plaintext")}); err == nil || !strings.Contains(err.Error(), "keyring, file or memory") {
		t.Errorf("err = %v", err)
	}
	s, _, _ := testStore(t, nil)
	for _, name := range []string{"", "a/b", `a\b`, "..", ".x", "a b", "é", strings.Repeat("x", 129)} {
		if err := s.Put(ctx, name, nil); err == nil {
			t.Errorf("Put accepted name %q", name)
		}
		if _, err := s.Get(ctx, name); err == nil {
			t.Errorf("Get accepted name %q", name)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	s, kc, w := testStore(t, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				name := fmt.Sprintf("blob-%d", i%3)
				if err := s.Put(ctx, name, []byte(fmt.Sprintf("value %d/%d", g, i))); err != nil {
					t.Error(err)
					return
				}
				got, err := s.Get(ctx, name)
				if err != nil || !strings.HasPrefix(string(got), "value ") {
					t.Errorf("Get = %q, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if kc.sets != 1 {
		t.Errorf("%d keys stored, want 1", kc.sets)
	}
	if len(w.list()) != 0 {
		t.Error(w.list())
	}
}

// Two processes starting at once on an empty keychain end with one key:
// the second waits on the key lock and uses the first one's key.
func TestConcurrentKeyCreation(t *testing.T) {
	s, kc, _ := testStore(t, nil)
	stores := []*Store{s}
	for i := 0; i < 5; i++ {
		s2, _ := reopen(t, s, nil)
		stores = append(stores, s2)
	}
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Put(ctx, fmt.Sprintf("b%d", i), []byte("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if kc.sets != 1 {
		t.Fatalf("%d keys stored, want 1", kc.sets)
	}
	check, w := reopen(t, s, nil)
	for i := range stores {
		if got := mustGet(t, check, fmt.Sprintf("b%d", i)); string(got) != "x" {
			t.Errorf("b%d = %q", i, got)
		}
	}
	if len(w.list()) != 0 {
		t.Fatal(w.list())
	}
}
