package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// Service is the keychain service name every item of ours is stored under;
// the item's user/account is the cache name.
const Service = "entra-credential-helpers"

// DefaultTimeout bounds one keychain call: a locked keyring's unlock prompt
// can block forever, and git, docker and kubectl must never hang on us.
const DefaultTimeout = 3 * time.Second

var (
	// ErrNotFound: the keychain has no item for the account.
	ErrNotFound = errors.New("keychain item not found")
	// ErrKeychainUnavailable: no keychain can be reached (no Secret Service,
	// no session bus, locked, too slow). Errors matching it wrap the cause.
	ErrKeychainUnavailable = errors.New("OS keychain unavailable")
)

// Keychain holds small secrets of Service, one per account. Get returns
// ErrNotFound for a missing item; Delete may return ErrNotFound or nil. Any
// other error means the keychain cannot be used. Implementations need not
// honour ctx: the Store runs every call under its own deadline.
type Keychain interface {
	Get(ctx context.Context, account string) (string, error)
	Set(ctx context.Context, account, secret string) error
	Delete(ctx context.Context, account string) error
}

// OSKeychain is the OS keychain through go-keyring: Secret Service on
// Linux, Keychain on macOS, Credential Manager on Windows. Every call has a
// deadline and, on Linux, never starts a D-Bus daemon.
type OSKeychain struct {
	// Timeout per call; DefaultTimeout when zero.
	Timeout time.Duration
}

// Get returns the secret stored for account, or ErrNotFound.
func (k OSKeychain) Get(ctx context.Context, account string) (string, error) {
	var secret string
	err := k.call(ctx, "read", func() (err error) { secret, err = gokeyring.Get(Service, account); return err })
	return secret, err
}

// Set stores secret for account, replacing any earlier one.
func (k OSKeychain) Set(ctx context.Context, account, secret string) error {
	return k.call(ctx, "write", func() error { return gokeyring.Set(Service, account, secret) })
}

// Delete removes account's item; a missing item is not an error.
func (k OSKeychain) Delete(ctx context.Context, account string) error {
	err := k.call(ctx, "delete", func() error { return gokeyring.Delete(Service, account) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (k OSKeychain) call(ctx context.Context, op string, fn func() error) error {
	if err := sessionBusReady(); err != nil {
		return err
	}
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return keychainErr(ctx, op, timeout, withDeadline(ctx, timeout, fn))
}

// keychainErr maps what a keychain call returned: go-keyring's ErrNotFound
// to ours, everything else but a caller's cancellation to
// ErrKeychainUnavailable, wrapping the cause.
func keychainErr(ctx context.Context, op string, timeout time.Duration, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound) || errors.Is(err, gokeyring.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, ErrKeychainUnavailable):
		return err
	case ctx.Err() != nil:
		return ctx.Err() // the caller gave up: not a keychain problem
	case errors.Is(err, errTimedOut):
		return fmt.Errorf("%w: keychain %s took longer than %v (is the keyring locked, waiting for a password?): %w",
			ErrKeychainUnavailable, op, timeout, context.DeadlineExceeded)
	default:
		return fmt.Errorf("%w: keychain %s: %w", ErrKeychainUnavailable, op, err)
	}
}

// errTimedOut marks withDeadline's own deadline, told apart from an error
// that fn itself returned.
var errTimedOut = fmt.Errorf("keychain call timed out: %w", context.DeadlineExceeded)

// withDeadline runs fn, giving up after timeout or when ctx ends. go-keyring
// has no context API, so fn runs in a goroutine that is abandoned (not
// killed) then: the helpers are short-lived processes, and leaking one
// blocked goroutine beats hanging git, docker or kubectl.
func withDeadline(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a late fn must not leak blocked
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errTimedOut
		}
		return ctx.Err()
	}
}

// keychainCall runs one call of the Store's Keychain under the Store's
// deadline, whatever the implementation does with ctx (a fake may ignore it).
func (s *Store) keychainCall(ctx context.Context, op string, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := withDeadline(cctx, s.timeout, func() error { return fn(cctx) })
	return keychainErr(ctx, op, s.timeout, err)
}
