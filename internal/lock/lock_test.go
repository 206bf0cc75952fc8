package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "klp.lock")
	l, err := Acquire(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(ctx, path, 100*time.Millisecond); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "PID") {
		t.Errorf("second Acquire = %v, want ErrLocked naming the holder", err)
	}
	// A wait for the lock ends with the context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Acquire(cctx, path, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled context = %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(ctx, path, 0)
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	l2.Release()
}

func TestLockRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "klp.lock")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(context.Background(), path, 0); err == nil {
		t.Errorf("Acquire through a symbolic link succeeded")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target was changed: %q", b)
	}
}
