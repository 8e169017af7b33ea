package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// benchBlob is about the size of an MSAL cache with one account.
func benchBlob(b *testing.B) []byte {
	raw := make([]byte, 9<<10)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	blob := []byte(base64.StdEncoding.EncodeToString(raw)) // 12 KB of text
	return blob
}

// benchGet measures what a warm helper process pays: a new Store (nothing
// in memory), its key from wherever opts say, the file read and opened.
func benchGet(b *testing.B, opts Options) {
	ctx := context.Background()
	s, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	blob := benchBlob(b)
	if err := s.Put(ctx, "msal", blob); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(blob)))
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(opts)
		if err != nil {
			b.Fatal(err)
		}
		got, err := s.Get(ctx, "msal")
		if err != nil || !bytes.Equal(got, blob) {
			b.Fatalf("Get: %d bytes, %v", len(got), err)
		}
	}
}

// BenchmarkWarmGet: key from the kernel keyring, 12 KB blob decrypted. The
// keychain fails, so a keychain trip would show as an error.
func BenchmarkWarmGet(b *testing.B) {
	requireKernelKeyring(b)
	name := randomName(b)
	b.Cleanup(func() { kernelKeyring{}.remove("entra:" + name) })
	kc := newFakeKeychain()
	opts := Options{Getenv: env(), Dir: b.TempDir(), Name: name, Mode: ModeKeyring, Keychain: kc, keyCache: kernelKeyring{}}
	s, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Put(context.Background(), "warmup", nil); err != nil { // makes the key, caches it in the kernel
		b.Fatal(err)
	}
	kc.err = errNoService
	benchGet(b, opts)
}

// BenchmarkWarmGetFile: the same in file mode (no key, checksum only), the
// floor for the encrypted path.
func BenchmarkWarmGetFile(b *testing.B) {
	benchGet(b, Options{Getenv: env(), Dir: b.TempDir(), Mode: ModeFile})
}

// BenchmarkColdGetSecretService: key from the Secret Service every time, as
// after a reboot or without keyctl: the cost the kernel keyring saves.
func BenchmarkColdGetSecretService(b *testing.B) {
	requireSecretService(b)
	name := randomName(b)
	opts := Options{Getenv: env(), Dir: b.TempDir(), Name: name, Mode: ModeKeyring, keyCache: noKeyCache{}}
	b.Cleanup(func() {
		s, _ := Open(opts)
		s.RemoveAll(context.Background())
	})
	benchGet(b, opts)
}
