package keyring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireSecretService skips a test when no Secret Service answers — but
// under CI=true it fails instead: CI must never skip the keychain silently.
func requireSecretService(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the Secret Service tests are for Linux")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Keychain{}.Get(ctx, "probe-"+randomName(t))
	if err == nil || errors.Is(err, ErrNotFound) {
		return
	}
	msg := "no Secret Service (" + err.Error() + "): run ./scripts/test, which starts gnome-keyring on a private D-Bus session"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func randomName(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "test-" + hex.EncodeToString(b)
}

// secretTool asks libsecret's own client, an independent witness of what
// the Secret Service holds.
func secretTool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("secret-tool"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("secret-tool (libsecret-tools) is not installed")
		}
		t.Skip("secret-tool (libsecret-tools) is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "secret-tool", args...).Output()
	return string(out), err
}

func TestSecretServiceRoundTrip(t *testing.T) {
	requireSecretService(t)
	ctx := context.Background()
	k := Keychain{}
	account := randomName(t)
	secret := "s3cret-" + randomName(t)
	t.Cleanup(func() { _ = k.Delete(ctx, account) })

	if _, err := k.Get(ctx, account); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set: err = %v, want ErrNotFound", err)
	}
	if err := k.Set(ctx, account, secret); err != nil {
		t.Fatal(err)
	}
	got, err := k.Get(ctx, account)
	if err != nil || got != secret {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// The item is in the Secret Service under our service name.
	out, err := secretTool(t, "lookup", "service", Service, "username", account)
	if err != nil || strings.TrimSpace(out) != secret {
		t.Fatalf("secret-tool lookup: %q, %v", out, err)
	}
	if err := k.Set(ctx, account, secret+"-2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.Get(ctx, account); got != secret+"-2" {
		t.Fatalf("after replace: %q", got)
	}
	if err := k.Delete(ctx, account); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get(ctx, account); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if out, _ := secretTool(t, "lookup", "service", Service, "username", account); out != "" {
		t.Fatal("secret-tool still finds the item after Delete")
	}
	if err := k.Delete(ctx, account); err != nil {
		t.Fatalf("deleting a missing item: %v", err)
	}
}

// Without a session bus the keychain is unavailable at once, and no D-Bus
// daemon is started (godbus would otherwise run dbus-launch).
func TestNoSessionBusIsUnavailableWithoutAutolaunch(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("D-Bus is Linux-only")
	}
	if _, err := os.Stat("/run/user/" + strconv.Itoa(os.Getuid()) + "/bus"); err == nil {
		t.Skip("this machine has a systemd user bus, which is used when the variable is unset")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	os.Unsetenv("DBUS_SESSION_BUS_ADDRESS")
	before := countProcs(t, "dbus-launch") + countProcs(t, "dbus-daemon")
	begin := time.Now()
	_, err := Keychain{}.Get(context.Background(), "anything")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("took %v to find no bus", d)
	}
	if after := countProcs(t, "dbus-launch") + countProcs(t, "dbus-daemon"); after > before {
		t.Errorf("a D-Bus daemon was started: %d -> %d processes", before, after)
	}
}

func countProcs(t *testing.T, name string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == name {
			n++
		}
	}
	return n
}
