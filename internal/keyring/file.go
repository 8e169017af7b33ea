package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// File format, version 1:
//
//	"ENTC" | version (1 byte) | kind (1 byte) | body
//	kind 1, sealed: nonce (12) | AES-256-GCM ciphertext+tag; AD = header | blob name
//	kind 2, plain:  SHA-256(header | blob name | data) (32) | data
//
// The version lets a later release change the format: an older binary
// treats a newer file as empty instead of misreading it. The blob name in
// the additional data (or checksum) means a file copied over another name's
// file does not open.
const (
	fileMagic     = "ENTC"
	formatVersion = 1
	kindSealed    = 1
	kindPlain     = 2
	headerLen     = len(fileMagic) + 2
	nonceLen      = 12
	keyLen        = 32

	sealedExt = ".enc"
	plainExt  = ".plain"
	lockExt   = ".lock"

	// maxFileSize guards against reading something absurd into memory.
	maxFileSize = 64 << 20
	// staleTemp is how old a temporary file must be before Put removes it as
	// the leftover of a killed writer (a younger one may be in use).
	staleTemp = time.Hour
)

// errUndecryptable: GCM authentication failed (another key, or damage).
var errUndecryptable = errors.New("cannot be decrypted (written with another key, or damaged)")

func header(kind byte) []byte {
	return append([]byte(fileMagic), formatVersion, kind)
}

// parseHeader checks what can be checked without the key. The returned
// error text is the reason shown to the user.
func parseHeader(raw []byte, kind byte) (body []byte, err error) {
	switch {
	case len(raw) < headerLen:
		return nil, errors.New("truncated")
	case string(raw[:len(fileMagic)]) != fileMagic:
		return nil, errors.New("not an entra cache file")
	case raw[len(fileMagic)] > formatVersion:
		return nil, fmt.Errorf("written by a newer version (format %d, this one reads %d)", raw[len(fileMagic)], formatVersion)
	case raw[len(fileMagic)] != formatVersion:
		return nil, fmt.Errorf("of an unknown format version %d", raw[len(fileMagic)])
	case raw[len(fileMagic)+1] != kind:
		return nil, fmt.Errorf("of an unexpected kind %d", raw[len(fileMagic)+1])
	}
	return raw[headerLen:], nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key []byte, name string, data []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := header(kindSealed)
	ad := append(bytes.Clone(out), name...)
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, data, ad), nil
}

func unseal(key []byte, name string, raw []byte) ([]byte, error) {
	body, err := parseHeader(raw, kindSealed)
	if err != nil {
		return nil, err
	}
	if len(body) < nonceLen+16 {
		return nil, errors.New("truncated")
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	ad := append(bytes.Clone(raw[:headerLen]), name...)
	data, err := aead.Open(nil, body[:nonceLen], body[nonceLen:], ad)
	if err != nil {
		return nil, errUndecryptable
	}
	if data == nil {
		data = []byte{} // present but empty, unlike a missing blob
	}
	return data, nil
}

func plainSum(hdr []byte, name string, data []byte) []byte {
	h := sha256.New()
	h.Write(hdr)
	h.Write([]byte(name))
	h.Write(data)
	return h.Sum(nil)
}

func encodePlain(name string, data []byte) []byte {
	out := header(kindPlain)
	out = append(out, plainSum(out, name, data)...)
	return append(out, data...)
}

func decodePlain(name string, raw []byte) ([]byte, error) {
	body, err := parseHeader(raw, kindPlain)
	if err != nil {
		return nil, err
	}
	if len(body) < sha256.Size {
		return nil, errors.New("truncated")
	}
	data := body[sha256.Size:]
	if !bytes.Equal(body[:sha256.Size], plainSum(raw[:headerLen], name, data)) {
		return nil, errors.New("damaged (checksum mismatch)")
	}
	return bytes.Clone(data), nil
}

// readFile reads a cache file, refusing one owned by another user. The
// owner is checked on the open descriptor, so the file cannot be swapped
// between the check and the read.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: cache file %s is not a regular file", ErrInsecurePath, path)
	}
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	// Sized from the stat: io.ReadAll's growing would cost more than the
	// decryption on the warm path.
	buf := bytes.NewBuffer(make([]byte, 0, min(fi.Size(), maxFileSize)+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(f, maxFileSize))
	return buf.Bytes(), err
}

// writeAtomic replaces path with data so that a reader sees either the old
// or the new content, never a mix: a temporary file in the same directory
// (0600 from os.CreateTemp), fsynced, then renamed over path. A process
// killed before the rename leaves only a stray temporary file.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// rename retries briefly on Windows, where replacing a file fails while
// another process has it open (a concurrent Get); elsewhere it cannot.
func rename(from, to string) error {
	err := os.Rename(from, to)
	for i := 0; err != nil && runtime.GOOS == "windows" && i < 20; i++ {
		time.Sleep(10 * time.Millisecond)
		err = os.Rename(from, to)
	}
	return err
}

// tempPrefix: temporary files start with a dot, which no blob name may, so
// they never collide with a blob's file.
func tempPrefix(base string) string { return "." + base + ".tmp-" }

// syncDir makes the rename durable. Best effort: Windows cannot open a
// directory this way, and the data is a cache.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// removeStaleTemps deletes leftovers of killed writers of path.
func removeStaleTemps(path string, now time.Time) {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
