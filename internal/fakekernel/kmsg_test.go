package fakekernel_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
)

// next reads one record's message, failing the test on an error.
func next(t *testing.T, w kernel.LogWatch) string {
	t.Helper()
	b, err := w.Next(context.Background())
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	rec, err := kernel.ParseKmsgRecord(b)
	if err != nil {
		t.Fatalf("record %q: %v", b, err)
	}
	return rec.Message
}

// A watch reads what is logged after it was opened, in order, the
// transition's records included; it waits when there is nothing new.
func TestLogWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.k.Printk(6, "before")
	w, err := e.k.Live().WatchLog()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	e.mustLoad(lp("p", "f"))
	e.k.Settle(10)
	var got []string
	for range 6 {
		got = append(got, next(t, w))
	}
	wantLines(t, got, []string{
		"p: loading out-of-tree module taints kernel.",
		"p: tainting kernel with TAINT_LIVEPATCH",
		"p: module verification failed: signature and/or required key missing - tainting kernel",
		"livepatch: enabling patch 'p'",
		"livepatch: 'p': starting patching transition",
		"livepatch: 'p': patching complete",
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with nothing new, cancelled: %v", err)
	}
	if e.k.LogWatches() != 1 {
		t.Errorf("%d watches open, want 1", e.k.LogWatches())
	}
	w.Close()
	if e.k.LogWatches() != 0 || !errors.Is(w.Close(), os.ErrClosed) {
		t.Errorf("after Close: %d watches open", e.k.LogWatches())
	}
}

// A reader that falls behind by more than the log holds loses records
// (EPIPE, once) and goes on with the oldest record left.
func TestLogWatchLost(t *testing.T) {
	t.Parallel()
	k := fakekernel.New(t, fakekernel.Options{LogCapacity: 4})
	w, err := k.WatchLog()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	k.Flood(6)
	if _, err := w.Next(context.Background()); !errors.Is(err, kernel.ErrLogLost) {
		t.Fatalf("Next after a flood: %v, want ErrLogLost", err)
	}
	if got := next(t, w); got != "flood: record 3 of 6" {
		t.Errorf("after the loss: %q, want the oldest record left", got)
	}
}

// Held records are invisible to readers until released; overwritten
// meanwhile, they are lost.
func TestLogHold(t *testing.T) {
	t.Parallel()
	k := fakekernel.New(t, fakekernel.Options{LogCapacity: 4})
	w, _ := k.WatchLog()
	defer w.Close()
	k.HoldLog()
	k.Printk(5, "held")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next while held: %v, want nothing to read", err)
	}
	k.ReleaseLog()
	if got := next(t, w); got != "held" {
		t.Errorf("after release: %q", got)
	}
	k.HoldLog()
	k.Flood(5)
	k.ReleaseLog()
	if _, err := w.Next(context.Background()); !errors.Is(err, kernel.ErrLogLost) {
		t.Errorf("Next after a held flood: %v, want ErrLogLost", err)
	}
}

// Injected faults: no log at all (EPERM), a log that breaks.
func TestLogFaults(t *testing.T) {
	t.Parallel()
	k := fakekernel.New(t, fakekernel.Options{})
	k.InjectLogOpenFault(unix.EPERM)
	if _, err := k.Live().WatchLog(); !errors.Is(err, kernel.ErrLogUnavailable) || !errors.Is(err, unix.EPERM) {
		t.Errorf("WatchLog with EPERM: %v", err)
	}
	k.InjectLogOpenFault(nil)
	w, err := k.Live().WatchLog()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	k.InjectLogReadFault(unix.EIO)
	if _, err := w.Next(context.Background()); !errors.Is(err, unix.EIO) {
		t.Errorf("Next with EIO: %v", err)
	}
}
