// Package keyring is the persistence layer: the OS keychain (Secret Service
// on Linux, Keychain on macOS, Credential Manager on Windows) through
// go-keyring, with a deadline on every call and no side effects on D-Bus.
//
// So far it holds the keychain access itself; the encrypted token cache
// files, the kernel-keyring key cache and the MSAL cache adapter build on it.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// Service is the keychain service name every item of ours is stored under.
const Service = "entra-credential-helpers"

// DefaultTimeout bounds one keychain call: a locked keyring's unlock prompt
// can block forever, and git, docker and kubectl must never hang on us.
const DefaultTimeout = 3 * time.Second

var (
	// ErrNotFound: the keychain has no such item.
	ErrNotFound = errors.New("keychain item not found")
	// ErrUnavailable: no keychain can be reached (no Secret Service, no
	// session bus, locked, or too slow). Callers fall back to memory.
	ErrUnavailable = errors.New("OS keychain unavailable")
)

// Keychain reads and writes items of Service. The zero value is usable.
type Keychain struct {
	// Timeout per call; DefaultTimeout when zero.
	Timeout time.Duration
}

// Get returns the secret stored for account.
func (k Keychain) Get(ctx context.Context, account string) (string, error) {
	var secret string
	err := k.call(ctx, "read", func() (err error) { secret, err = gokeyring.Get(Service, account); return err })
	return secret, err
}

// Set stores secret for account, replacing any earlier one.
func (k Keychain) Set(ctx context.Context, account, secret string) error {
	return k.call(ctx, "write", func() error { return gokeyring.Set(Service, account, secret) })
}

// Delete removes account's item; a missing item is not an error.
func (k Keychain) Delete(ctx context.Context, account string) error {
	err := k.call(ctx, "delete", func() error { return gokeyring.Delete(Service, account) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// call runs fn with the deadline. go-keyring has no context API, so fn runs
// in a goroutine that is abandoned (not killed) when the deadline passes.
func (k Keychain) call(ctx context.Context, op string, fn func() error) error {
	if err := sessionBusReady(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	timeout := k.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	err := withDeadline(ctx, timeout, fn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gokeyring.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: keychain %s took longer than %v (is the keyring locked?)", ErrUnavailable, op, timeout)
	case errors.Is(err, gokeyring.ErrSetDataTooBig):
		return fmt.Errorf("keychain %s: %w", op, err)
	default:
		return fmt.Errorf("%w: keychain %s: %v", ErrUnavailable, op, err)
	}
}

func withDeadline(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a late fn must not leak blocked
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
