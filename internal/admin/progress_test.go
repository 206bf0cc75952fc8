package admin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/livepatch"
)

// The progress line's count runs in the background, one at a time, no
// sooner than countEvery after the last one; a count for the other
// direction (before a reverse) is not shown. After the first full count,
// a count reads again only the tasks found blocking; a reverse, or more
// blocking tasks than it keeps, makes it count every task again.
func TestTaskCounter(t *testing.T) {
	e := newEnv(t, fakekernel.Options{AutoTick: -1, SwitchOnStart: true})
	path := e.patchModule(t, "lp", false, "f")
	e.k.BlockTask(100)
	if _, err := e.load(context.Background(), path, WaitOptions{Timeout: time.Millisecond, OnStall: StallLeave}); err == nil {
		t.Fatal("the load did not stall")
	}
	// No count yet, whatever the target, the zero PatchState included.
	tc0 := newTaskCounter(context.Background(), e.m.LP)
	if n := tc0.left(livepatch.StateUnpatched); n != -1 {
		t.Errorf("before the first count, unpatching: %d, want -1", n)
	}
	tc0.stop()
	clock := time.Unix(1000, 0)
	tc := newTaskCounter(context.Background(), e.m.LP)
	tc.now = func() time.Time { return clock }
	// Exactly as many blocking tasks as it keeps: kept, to read again.
	tc.keep = 1
	defer tc.stop()
	if n := tc.left(livepatch.StatePatched); n != -1 {
		t.Errorf("before the first count: %d, want -1", n)
	}
	tc.wg.Wait() // the count started by left
	if n := tc.left(livepatch.StatePatched); n != 1 || tc.full != 1 {
		t.Errorf("after the first count: %d (%d full), want 1 (task 100) from one full count", n, tc.full)
	}
	if tc.running {
		t.Error("a second count started before countEvery passed")
	}
	// The next count reads task 100 alone: once it switched, none is left.
	e.k.UnblockTask(100)
	if !e.k.SwitchTask(100) {
		t.Fatal("task 100 did not switch")
	}
	clock = clock.Add(countEvery)
	tc.left(livepatch.StatePatched)
	tc.wg.Wait()
	if n := tc.left(livepatch.StatePatched); n != 0 || tc.full != 1 {
		t.Errorf("recount after task 100 switched: %d (%d full), want 0 from no new full count", n, tc.full)
	}
	clock = clock.Add(countEvery)
	tc.left(livepatch.StatePatched)
	tc.wg.Wait()
	if n := tc.left(livepatch.StatePatched); n != 0 || tc.full != 1 {
		t.Errorf("recount of none: %d (%d full), want 0 and still one full count", n, tc.full)
	}
	if n := tc.left(livepatch.StateUnpatched); n != -1 {
		t.Errorf("after a reverse: %d, want -1 until counted again", n)
	}
	clock = clock.Add(countEvery)
	tc.keep = 1 // unpatching, more tasks block than it keeps
	tc.left(livepatch.StateUnpatched)
	tc.wg.Wait()
	// Unpatching, every task (all switched to patched) blocks.
	if n := tc.left(livepatch.StateUnpatched); n < 2 || tc.full != 2 || tc.blocking != nil {
		t.Errorf("counted for unpatching: %d (%d full, kept %v), want every task from a second full count, none kept", n, tc.full, tc.blocking)
	}
	clock = clock.Add(countEvery)
	tc.left(livepatch.StateUnpatched)
	tc.wg.Wait()
	if tc.full != 3 {
		t.Errorf("after a count that kept no tasks: %d full counts, want 3", tc.full)
	}
	// A count that cannot read every task shows no number, not the last.
	if err := os.WriteFile(filepath.Join(e.k.ProcRoot(), "100", "task", "100", "patch_state"), []byte("garbage\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(countEvery)
	tc.left(livepatch.StateUnpatched)
	tc.wg.Wait()
	if n := tc.left(livepatch.StateUnpatched); n != -1 || tc.full != 4 || tc.blocking != nil {
		t.Errorf("after a count that missed a task: %d (%d full, kept %v), want -1 from a fourth full count, none kept", n, tc.full, tc.blocking)
	}
}

// Stopping the counter stops the count in progress.
func TestTaskCounterStop(t *testing.T) {
	e := newEnv(t, fakekernel.Options{AutoTick: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tc := newTaskCounter(ctx, e.m.LP)
	if n := tc.left(livepatch.StatePatched); n != -1 || tc.running {
		t.Errorf("a cancelled counter: %d, running %v; want -1 and no count", n, tc.running)
	}
	tc.stop()
}

// With -v (Config.Details), a wait says whether it slept on the kernel log
// and what made it notice the end.
func TestWaitDetails(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	var details []string
	e.cfg.Details = func(s string) { details = append(details, s) }
	e.m = NewChanger(e.k.Live(), e.cfg)
	if _, err := e.load(context.Background(), path, WaitOptions{Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(details, "\n")
	if !strings.Contains(got, "wait for lp: the transition ended after") || strings.Contains(got, "polled") {
		t.Errorf("details %q: want the end of the wait, no polling", got)
	}
	e.k.InjectLogOpenFault(syscall.EPERM)
	details = nil
	if _, err := e.m.Unload(context.Background(), "lp", WaitOptions{Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got = strings.Join(details, "\n")
	if !strings.Contains(got, "polled the transition attribute (the kernel log could not be watched") {
		t.Errorf("details %q: want the reason for polling", got)
	}
}

// With -v, a wait whose kernel log records were overwritten before it
// read them (a flooded log) says so, once, and still sees the end.
func TestWaitDetailsFloodedLog(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	var details []string
	e.cfg.Details = func(s string) { details = append(details, s) }
	e.m = NewChanger(e.k.Live(), e.cfg)
	e.k.BlockTask(100)
	e.k.After(500*time.Millisecond, func() {
		e.k.HoldLog()
		e.k.Flood(2 * fakekernel.DefaultLogCapacity)
		e.k.ReleaseLog()
		e.k.HoldLog()
		e.k.Flood(2 * fakekernel.DefaultLogCapacity)
		e.k.ReleaseLog()
	})
	e.k.After(1500*time.Millisecond, func() { e.k.UnblockTask(100) })
	if o, err := e.load(context.Background(), path, WaitOptions{Timeout: 10 * time.Second}); err != nil || o.Result != ResultPatched {
		t.Fatalf("Load = %+v, %v; want patched", o, err)
	}
	n := 0
	for _, d := range details {
		if strings.Contains(d, "wait for lp: kernel log records were overwritten before klp read them") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("details %q: want the loss of records said once", details)
	}
}
