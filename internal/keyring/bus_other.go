//go:build !linux

package keyring

import "runtime"

// unavailableHint tells the user what to do when the keychain is unreachable.
var unavailableHint = func() string {
	switch runtime.GOOS {
	case "darwin":
		return "unlock the login keychain (security unlock-keychain)"
	case "windows":
		return "make sure Windows Credential Manager is available to this session"
	}
	return "this system has no supported OS keychain"
}()

// sessionBusReady: only the Linux backend talks D-Bus.
func sessionBusReady() error { return nil }
