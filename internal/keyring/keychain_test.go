package keyring

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWithDeadlineAbandonsABlockedCall(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	begin := time.Now()
	err := withDeadline(context.Background(), 50*time.Millisecond, func() error { <-block; return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("blocked call held the caller %v", d)
	}
	if err := withDeadline(context.Background(), time.Second, func() error { return nil }); err != nil {
		t.Fatalf("quick call: %v", err)
	}
}
