package keyring

import (
	"time"

	"golang.org/x/sys/unix"
)

// Permission bits of a kernel key (linux/keyctl.h; x/sys has no names for them).
const (
	keyPosAll     = 0x3f000000 // possessor: view read write search link setattr
	keyUsrView    = 0x00010000
	keyUsrRead    = 0x00020000
	keyUsrWrite   = 0x00040000
	keyUsrSearch  = 0x00080000
	keyUsrSetattr = 0x00200000
	// Processes of our uid may use the key even when they do not possess it
	// (a session keyring that does not link the user keyring); group and
	// others get nothing.
	kernelKeyPerm = keyPosAll | keyUsrView | keyUsrRead | keyUsrWrite | keyUsrSearch | keyUsrSetattr
)

// kernelKeyring caches cache keys in the kernel user keyring (per uid,
// shared by all the user's sessions, gone at reboot), so a warm process
// reads its key with two syscalls instead of a D-Bus round trip. Every
// failure (no keyctl, blocked by seccomp, expired) reads as "absent": the
// keychain is always there to fall back on.
type kernelKeyring struct{}

func (kernelKeyring) get(desc string) ([]byte, bool) {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
	if err != nil {
		return nil, false
	}
	buf := make([]byte, 64)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil || n > len(buf) {
		return nil, false
	}
	return buf[:n], true
}

func (kernelKeyring) put(desc string, key []byte, ttl time.Duration) {
	// add_key replaces the payload of an existing key with this description.
	id, err := unix.AddKey("user", desc, key, unix.KEY_SPEC_USER_KEYRING)
	if err != nil {
		return
	}
	_ = unix.KeyctlSetperm(id, kernelKeyPerm)
	if _, err := unix.KeyctlInt(unix.KEYCTL_SET_TIMEOUT, id, int(ttl/time.Second), 0, 0); err != nil {
		// A key without expiry would outlive the keychain's say for as long
		// as the machine runs: drop it rather than keep it.
		removeKernelKey(id)
	}
}

func (kernelKeyring) remove(desc string) {
	for {
		id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
		if err != nil {
			return
		}
		if !removeKernelKey(id) {
			return
		}
	}
}

func removeKernelKey(id int) bool {
	if _, err := unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0); err == nil {
		return true
	}
	_, err := unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
	return err == nil
}
