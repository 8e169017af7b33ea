package keyring

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain turns the test binary into the other process of the
// cross-process tests when ENTRA_KEYRING_HELPER says what to do.
func TestMain(m *testing.M) {
	if what := os.Getenv("ENTRA_KEYRING_HELPER"); what != "" {
		if err := helperProcess(what, os.Getenv("ENTRA_KEYRING_HELPER_DIR")); err != nil {
			os.Stderr.WriteString("helper: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperProcess(what, dir string) error {
	s, err := Open(Options{Getenv: env(), Mode: ModeFile, Dir: dir})
	if err != nil {
		return err
	}
	switch what {
	case "lock": // hold the lock until stdin closes
		unlock, err := s.Lock(ctx, "msal")
		if err != nil {
			return err
		}
		os.Stdout.WriteString("locked\n")
		io.Copy(io.Discard, os.Stdin)
		unlock()
	case "write": // rewrite the blob until killed
		for i := 0; ; i++ {
			if err := s.Put(ctx, "msal", crashBlob(i%2)); err != nil {
				return err
			}
			if i == 0 {
				os.Stdout.WriteString("writing\n")
			}
		}
	}
	return nil
}

// crashBlob is one of two versions, large enough that a write takes a while.
func crashBlob(v int) []byte { return bytes.Repeat([]byte{byte('A' + v)}, 512<<10) }

func helper(t *testing.T, what, dir string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ENTRA_KEYRING_HELPER="+what, "ENTRA_KEYRING_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin, bufio.NewReader(stdout)
}

func waitLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	line, err := r.ReadString('\n')
	if strings.TrimSpace(line) != want {
		t.Fatalf("helper said %q, %v; want %q", line, err, want)
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	s, _, _ := testStore(t, func(o *Options) { o.Mode = ModeFile })
	cmd, stdin, out := helper(t, "lock", s.base)
	waitLine(t, out, "locked")

	// While the other process holds it, a deadline ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if _, err := s.Lock(cctx, "msal"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while held elsewhere: err = %v", err)
	}
	if d := time.Since(begin); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	// Another name is free.
	unlock, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	unlock()

	// Once the holder lets go, the waiter gets it.
	got := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		unlock, err := s.Lock(cctx, "msal")
		if err == nil {
			unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Lock returned while the helper held it: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	stdin.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

func TestLockBetweenGoroutines(t *testing.T) {
	for _, mode := range []Mode{ModeKeyring, ModeFile, ModeMemory} {
		t.Run(string(mode), func(t *testing.T) {
			s, _, _ := testStore(t, func(o *Options) { o.Mode = mode })
			other, _ := reopen(t, s, nil) // a second Store: its own file descriptor
			if mode == ModeMemory {
				other = s // memory locks are per Store: only goroutines share them
			}
			unlock, err := s.Lock(ctx, "msal")
			if err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := other.Lock(cctx, "msal"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("second Lock: err = %v", err)
			}
			acquired := make(chan time.Time, 1)
			go func() {
				unlock2, err := other.Lock(ctx, "msal")
				if err != nil {
					t.Error(err)
				}
				acquired <- time.Now()
				unlock2()
			}()
			time.Sleep(50 * time.Millisecond)
			released := time.Now()
			unlock()
			unlock() // a second unlock is harmless
			if at := <-acquired; at.Before(released) {
				t.Fatal("the waiter got the lock before it was released")
			}
		})
	}
}

// A writer killed at a random moment leaves the previous blob or the new
// one, never a torn file.
func TestKilledWriterLeavesAWholeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s, _, _ := testStore(t, func(o *Options) { o.Mode = ModeFile })
	for i := 0; i < 5; i++ {
		cmd, _, out := helper(t, "write", s.base)
		waitLine(t, out, "writing")
		time.Sleep(time.Duration(20+i*37) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		check, w := reopen(t, s, nil)
		got := mustGet(t, check, "msal")
		if !bytes.Equal(got, crashBlob(0)) && !bytes.Equal(got, crashBlob(1)) {
			t.Fatalf("after kill %d: got %d bytes, not a whole version", i, len(got))
		}
		if len(w.list()) != 0 {
			t.Fatalf("after kill %d: %v", i, w.list())
		}
	}
}
