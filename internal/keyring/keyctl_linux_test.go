package keyring

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeKernelKeyring says why the kernel keyring cannot be used here (a
// seccomp profile may block keyctl), or nil.
func probeKernelKeyring() error {
	desc := fmt.Sprintf("entra:probe-%d", os.Getpid())
	id, err := unix.AddKey("user", desc, []byte("probe"), unix.KEY_SPEC_USER_KEYRING)
	if err != nil {
		return fmt.Errorf("add_key: %w", err)
	}
	defer removeKernelKey(id)
	if _, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0); err != nil {
		return fmt.Errorf("keyctl search: %w", err)
	}
	return nil
}

// kernelKey describes the key desc of the user keyring: its permission mask
// (from KEYCTL_DESCRIBE) and its timeout column of /proc/keys.
func kernelKey(desc string) (perm uint32, timeout string, err error) {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
	if err != nil {
		return 0, "", err
	}
	d, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		return 0, "", err
	}
	f := strings.Split(d, ";") // type;uid;gid;perm;description
	if len(f) < 5 {
		return 0, "", fmt.Errorf("describe: %q", d)
	}
	p, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil {
		return 0, "", err
	}
	keys, err := os.ReadFile("/proc/keys")
	if err != nil {
		return uint32(p), "", nil
	}
	for _, line := range strings.Split(string(keys), "\n") {
		if f := strings.Fields(line); len(f) > 8 && f[0] == fmt.Sprintf("%08x", id) {
			return uint32(p), f[3], nil
		}
	}
	return uint32(p), "", errors.New("key not in /proc/keys")
}
