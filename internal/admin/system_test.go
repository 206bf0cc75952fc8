package admin

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// Tests of the read side (System) on the fixture trees of testdata/.

// fixtureSystem returns a System on testdata/<name>.txtar and the tree's
// root.
func fixtureSystem(t *testing.T, name string) (*System, string) {
	t.Helper()
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", name+".txtar"))
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	return NewSystem(h), root
}

func taskIDs(r *BlockingReport) [][2]int {
	var out [][2]int
	for _, ts := range r.Tasks {
		out = append(out, [2]int{ts.PID, ts.TID})
	}
	return out
}

// TestBlockingModes: kGraft lists processes (its per-process flag) or
// threads, as asked; an upstream kernel always lists threads, whatever the
// caller asks for.
func TestBlockingModes(t *testing.T) {
	s, _ := fixtureSystem(t, "sle12-kgraft")
	for _, tc := range []struct {
		mode BlockingMode
		want [][2]int
	}{
		{KGraftProcesses, [][2]int{{96, 96}, {1021, 1021}, {1100, 1100}}},
		{KGraftThreads, [][2]int{{96, 96}, {1021, 1025}, {1100, 1100}}},
	} {
		r, err := s.Blocking(BlockingOptions{Mode: tc.mode})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, taskIDs(r)); diff != "" || r.Mode != tc.mode {
			t.Errorf("kGraft, mode %v (got %v): tasks: unexpected diff (-want +got):\n%s", tc.mode, r.Mode, diff)
		}
	}

	s, _ = fixtureSystem(t, "transition-blocking")
	for _, mode := range []BlockingMode{Threads, KGraftProcesses, KGraftThreads} {
		r, err := s.Blocking(BlockingOptions{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if r.Mode != Threads {
			t.Errorf("upstream, asked for mode %v: mode %v; want threads", mode, r.Mode)
		}
		found := false
		for _, id := range taskIDs(r) {
			found = found || id == [2]int{812, 846}
		}
		if !found {
			t.Errorf("upstream, mode %v: the blocking thread 846 of rsyslogd is not listed: %v", mode, taskIDs(r))
		}
	}
}

// TestBlockingStackErrors: a stack that root may not read makes the answer
// incomplete and says so; a kernel without stack traces, or a task that
// exited meanwhile, does not.
func TestBlockingStackErrors(t *testing.T) {
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	e.k.BlockTask(100)
	e.k.BlockTask(200)
	e.k.BlockTask(201)
	if _, err := e.load(t.Context(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: time.Second, OnStall: StallLeave}); err == nil {
		t.Fatal("the transition completed")
	}
	stack := func(pid, tid int) string {
		return filepath.Join(e.k.ProcRoot(), strconv.Itoa(pid), "task", strconv.Itoa(tid), "stack")
	}
	// 100's stack file is gone (no CONFIG_STACKTRACE, or it exited).
	if err := os.Remove(stack(100, 100)); err != nil {
		t.Fatal(err)
	}
	r, err := e.m.Blocking(BlockingOptions{Stacks: true})
	if err != nil || r.StackErr != nil || r.Incomplete() != nil {
		t.Fatalf("a missing stack: %v, StackErr %v, Incomplete %v; want a complete answer", err, r.StackErr, r.Incomplete())
	}
	// 201's and then 200's may not be read: the first is the error.
	e.k.InjectReadFault(stack(200, 201), syscall.EACCES)
	e.k.InjectReadFault(stack(200, 200), syscall.EPERM)
	r, err = e.m.Blocking(BlockingOptions{Stacks: true})
	if err != nil || !errors.Is(r.StackErr, syscall.EPERM) {
		t.Fatalf("unreadable stacks: %v, StackErr %v; want the first (200's, EPERM)", err, r.StackErr)
	}
	inc := r.Incomplete()
	if !errors.Is(inc, ErrIncomplete) || !strings.Contains(inc.Error(), "stack traces need root") || r.Count() != 3 {
		t.Errorf("Incomplete %v, Count %d; want an incomplete answer that says stacks need root, 3 tasks counted", inc, r.Count())
	}
	for _, ts := range r.Tasks {
		if ts.TID == 202 || (ts.TID == 100) != errors.Is(ts.StackErr, livepatch.ErrStackUnavailable) {
			t.Errorf("task %d: stack error %v", ts.TID, ts.StackErr)
		}
	}
}
