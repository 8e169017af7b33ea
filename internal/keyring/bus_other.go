//go:build !linux

package keyring

// sessionBusReady: only the Linux backend talks D-Bus.
func sessionBusReady() error { return nil }
