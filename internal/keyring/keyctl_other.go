//go:build !linux

package keyring

import "time"

// kernelKeyring: only Linux has a kernel keyring; elsewhere every warm call
// reads the key from the keychain.
type kernelKeyring struct{}

func (kernelKeyring) get(string) ([]byte, bool)         { return nil, false }
func (kernelKeyring) put(string, []byte, time.Duration) {}
func (kernelKeyring) remove(string)                     {}
