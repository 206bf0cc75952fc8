package admin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/livepatch"
)

// Tests of the stall policies, the stall report and poke: what each does,
// and what it must never do to a transition it did not start.

func TestParseStallPolicy(t *testing.T) {
	for _, ok := range []string{"wait", "rollback", "leave"} {
		if p, err := ParseStallPolicy(ok); err != nil || string(p) != ok {
			t.Errorf("ParseStallPolicy(%q) = %q, %v", ok, p, err)
		}
	}
	for _, bad := range []string{"", "Rollback", "pray", " leave"} {
		if p, err := ParseStallPolicy(bad); err == nil || p != "" || !strings.Contains(err.Error(), "wait, rollback or leave") {
			t.Errorf("ParseStallPolicy(%q) = %q, %v; want an error naming the policies", bad, p, err)
		}
	}
}

// TestStallWait: --on-stall=wait reports the stall, says it waits on, and
// returns when the transition completes, however long after the timeout.
func TestStallWait(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	e.k.BlockTask(15, "f")
	var events []string
	e.cfg.Events = func(s string) {
		events = append(events, s)
		if strings.Contains(s, "waiting on") {
			// The kworker leaves f a minute later.
			e.k.After(time.Minute, func() { e.k.UnblockTask(15) })
		}
	}
	e.m = NewChanger(e.k.Live(), e.cfg)
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: 3 * time.Second, OnStall: StallWait})
	if err != nil || o.Result != ResultPatched {
		t.Fatalf("Load = %+v, %v; want patched", o, err)
	}
	if o.Stall == nil || len(o.Stall.Tasks) != 1 || o.Stall.Tasks[0].TID != 15 {
		t.Errorf("stall report %+v, want the kworker 15", o.Stall)
	}
	if len(events) != 1 || !strings.Contains(events[0], "transition stalled after 3s; waiting on") {
		t.Errorf("events %q, want one saying that it waits on after the 3s stall", events)
	}
	// Completed by the retry work after the kworker left f, a minute and
	// 3 s into the wait.
	if el := e.k.Elapsed(); el < time.Minute+3*time.Second || el > time.Minute+5*time.Second {
		t.Errorf("the wait ended at %v on the kernel's clock, want just after 1m3s", el)
	}
	if p, err := e.m.LP.Patch("lp"); err != nil || !p.Enabled || p.InTransition() {
		t.Errorf("after the wait: %+v, %v", p, err)
	}
}

// TestReloadDuringItsTransition: loading a patch that is still patching
// (someone else's load, left in transition) waits for it and, if it stalls
// again, leaves it: whatever this load's policy, it never reverses a
// transition it did not start.
func TestReloadDuringItsTransition(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	e.k.BlockTask(15, "f")
	ctx := context.Background()
	if _, err := e.load(ctx, path, WaitOptions{Timeout: 2 * time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	o, err := e.load(ctx, path, WaitOptions{Timeout: 2 * time.Second, OnStall: StallRollback})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultLeftInTransition || strings.Contains(err.Error(), "rollback") {
		t.Fatalf("second load = %+v, %v; want left in transition", o, err)
	}
	if !slices.ContainsFunc(o.Notes, func(n string) bool { return strings.Contains(n, "already loaded and patching; waiting for it") }) {
		t.Errorf("notes %q do not say that it waits for the load in progress", o.Notes)
	}
	if p, err := e.m.LP.Patch("lp"); err != nil || !p.Enabled || !p.InTransition() || !e.k.Loaded("lp") {
		t.Errorf("the other load's transition was changed: %+v, %v, loaded %v", p, err, e.k.Loaded("lp"))
	}
	// Once the task leaves f, the same load finds it patched.
	e.k.UnblockTask(15)
	if o, err := e.load(ctx, path, WaitOptions{Timeout: 2 * time.Second, OnStall: StallRollback}); err != nil || o.Result != ResultPatched {
		t.Errorf("load after the release = %+v, %v; want patched", o, err)
	}
}

// TestUnloadNeverRollsBack: an unload whose unpatching transition stalls
// leaves it running, whatever --on-stall says: reversing it would patch
// again what the user asked to remove.
func TestUnloadNeverRollsBack(t *testing.T) {
	for _, already := range []bool{false, true} {
		e := newEnv(t, fakekernel.Options{})
		ctx := context.Background()
		if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
		e.k.BlockTask(15, "f") // now it sleeps in the new f: unpatching waits
		if already {
			if err := e.m.Ctl.Disable("lp"); err != nil {
				t.Fatal(err)
			}
		}
		o, err := e.m.Unload(ctx, "lp", WaitOptions{Timeout: 2 * time.Second, OnStall: StallRollback})
		if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultLeftInTransition || strings.Contains(err.Error(), "rollback") {
			t.Errorf("already unpatching %v: Unload = %+v, %v; want left in transition", already, o, err)
		}
		if slices.ContainsFunc(o.Notes, func(n string) bool { return strings.Contains(n, "rolling back") }) {
			t.Errorf("already unpatching %v: notes %q", already, o.Notes)
		}
		p, err := e.m.LP.Patch("lp")
		if err != nil || p.Enabled || !p.InTransition() || !e.k.Loaded("lp") {
			t.Errorf("already unpatching %v: after the stalled unload: %+v, %v, loaded %v; want still unpatching", already, p, err, e.k.Loaded("lp"))
		}
	}
}

// TestStallReportOfTheTransitioningPatch: the stall report names the
// functions of the patch in transition, not those of every patch loaded,
// and marks as culprits only frames in them (or in patch modules).
func TestStallReportOfTheTransitioningPatch(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	if _, err := e.load(ctx, e.patchModule(t, "lp_old", false, "old_a", "old_b"), WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.k.BlockTask(15, "new_f")
	o, err := e.load(ctx, e.patchModule(t, "lp_new", false, "new_f", "new_g"), WaitOptions{Timeout: 3 * time.Second, OnStall: StallLeave})
	if !errors.Is(err, livepatch.ErrStalled) || o.Stall == nil {
		t.Fatalf("Load = %+v, %v; want a stall report", o, err)
	}
	if diff := cmp.Diff([]string{"new_f", "new_g"}, o.Stall.Functions); diff != "" {
		t.Errorf("functions: unexpected diff (-want +got):\n%s", diff)
	}
	if len(o.Stall.Tasks) != 1 || !slices.Equal(o.Stall.Tasks[0].CulpritFunctions(), []string{"new_f"}) {
		t.Errorf("tasks %+v, want the kworker with its frame in new_f", o.Stall.Tasks)
	}
	if tr := o.Stall.Transition; tr == nil || tr.Patch != "lp_new" || tr.Direction() != "patching" {
		t.Errorf("transition %+v", tr)
	}
}

// TestBlockingReportsUnreadableTasks: a blocking task whose details cannot
// be read or parsed is reported as unreadable, making the answer
// incomplete, never silently left out; the others are still listed.
func TestBlockingReportsUnreadableTasks(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	for _, tid := range []int{100, 200, 201, 202} {
		e.k.BlockTask(tid)
	}
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 3 * time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	// 100's stat is garbled; 201's cannot be read.
	stat := filepath.Join(e.k.ProcRoot(), "100", "task", "100", "stat")
	if err := os.WriteFile(stat, []byte("garbage\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	e.k.InjectReadFault(filepath.Join(e.k.ProcRoot(), "200", "task", "201", "stat"), syscall.EACCES)
	r, err := e.m.Blocking(BlockingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var listed, unreadable [][2]int
	for _, ts := range r.Tasks {
		listed = append(listed, [2]int{ts.PID, ts.TID})
	}
	for _, u := range r.Unreadable {
		unreadable = append(unreadable, [2]int{u.PID, u.TID})
	}
	if diff := cmp.Diff([][2]int{{200, 200}, {200, 202}}, listed); diff != "" {
		t.Errorf("listed tasks: unexpected diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]int{{100, 100}, {200, 201}}, unreadable); diff != "" {
		t.Errorf("unreadable tasks: unexpected diff (-want +got):\n%s", diff)
	}
	if r.Complete() || r.Count() != -1 || !errors.Is(r.Incomplete(), ErrIncomplete) || !strings.Contains(r.Incomplete().Error(), "2 task(s)") {
		t.Errorf("Complete %v, Count %d, Incomplete %v; want an incomplete answer about 2 tasks", r.Complete(), r.Count(), r.Incomplete())
	}
}

// TestPokeDecidesPerThread: a process is poked only when every one of its
// blocking threads may be; one thread in uninterruptible sleep, wherever
// it is among the threads, keeps the whole process from being stopped.
func TestPokeDecidesPerThread(t *testing.T) {
	for _, dThread := range []int{200, 202} {
		e := newEnv(t, fakekernel.Options{})
		e.cfg.Getpid, e.cfg.Getppid, e.cfg.Getpgrp = func() int { return 9000 }, func() int { return 9001 }, func() int { return 9002 }
		e.m = NewChanger(e.k.Live(), e.cfg)
		for _, tid := range []int{100, 200, 201, 202} {
			e.k.BlockTask(tid)
		}
		e.k.SetUninterruptible(dThread, true)
		if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 3 * time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
			t.Fatal(err)
		}
		plan, err := e.m.PlanPoke()
		if err != nil {
			t.Fatal(err)
		}
		skips := map[int]string{}
		for _, p := range plan.Targets {
			skips[p.PID] = p.Skip
		}
		// The other tasks switched at the retry work before the stall.
		want := map[int]string{100: "", 200: "uninterruptible sleep (state D)"}
		if diff := cmp.Diff(want, skips); diff != "" {
			t.Errorf("thread %d in D: plan: unexpected diff (-want +got):\n%s", dThread, diff)
		}
		if err := e.m.Poke(context.Background(), plan); err != nil {
			t.Fatal(err)
		}
		want2 := []fakekernel.Signal{{PID: 100, Sig: syscall.SIGSTOP}, {PID: 100, Sig: syscall.SIGCONT}}
		if diff := cmp.Diff(want2, e.k.Signals()); diff != "" {
			t.Errorf("thread %d in D: signals: unexpected diff (-want +got):\n%s", dThread, diff)
		}
	}
}

// TestPokeContinuesWhenTheStateCannotBeRead: a process stopped by poke is
// always continued, even when its state cannot be read after SIGSTOP.
func TestPokeContinuesWhenTheStateCannotBeRead(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	e.cfg.Getpid, e.cfg.Getppid, e.cfg.Getpgrp = func() int { return 9000 }, func() int { return 9001 }, func() int { return 9002 }
	var slept int
	e.cfg.Sleep = func(time.Duration) { slept++ }
	e.m = NewChanger(e.k.Live(), e.cfg)
	e.k.BlockTask(100)
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 3 * time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	plan, err := e.m.PlanPoke()
	if err != nil {
		t.Fatal(err)
	}
	e.k.InjectReadFault(filepath.Join(e.k.ProcRoot(), "100", "task", "100", "stat"), syscall.EIO)
	err = e.m.Poke(context.Background(), plan)
	want := []fakekernel.Signal{{PID: 100, Sig: syscall.SIGSTOP}, {PID: 100, Sig: syscall.SIGCONT}}
	if diff := cmp.Diff(want, e.k.Signals()); diff != "" || err != nil {
		t.Errorf("Poke = %v; signals: unexpected diff (-want +got):\n%s", err, diff)
	}
	if slept != 0 {
		t.Errorf("poke waited %d times for a state it could not read", slept)
	}
}

// TestPokeNamesTheProcess: poke names a process by its leader's name, not
// by the name of whichever of its threads blocks (rsyslogd, not
// in:imjournal): it is the process that is stopped.
func TestPokeNamesTheProcess(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	e.cfg.Getpid, e.cfg.Getppid, e.cfg.Getpgrp = func() int { return 9000 }, func() int { return 9001 }, func() int { return 9002 }
	e.m = NewChanger(e.k.Live(), e.cfg)
	e.k.BlockTask(201) // a worker thread of app (200)
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 3 * time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	plan, err := e.m.PlanPoke()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]PokeTarget{{PID: 200, Comm: "app"}}, plan.Targets); diff != "" {
		t.Errorf("plan: unexpected diff (-want +got):\n%s", diff)
	}
}

// wait --on-stall=rollback on a stalled unpatching (someone's disable)
// rolls nothing back: the kernel refuses a second disable, and reversing
// would patch again what was being removed. It says so and changes
// nothing.
func TestRollbackLeavesAnUnpatching(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
	ctx := context.Background()
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.k.BlockTask(15, "f") // it sleeps in the new f: unpatching waits
	if err := e.m.Ctl.Disable("lp"); err != nil {
		t.Fatal(err)
	}
	o, err := e.m.Wait(ctx, "lp", WaitOptions{Timeout: 2 * time.Second, OnStall: StallRollback, RefTimeout: 5 * time.Second})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultLeftInTransition || !strings.Contains(err.Error(), "lp is unpatching") {
		t.Fatalf("Wait = %+v, %v; want left in transition, said unpatching", o, err)
	}
	p, perr := e.m.LP.Patch("lp")
	if perr != nil || !p.InTransition() || p.Enabled || !e.k.Loaded("lp") {
		t.Errorf("after the refused rollback: %+v, %v, loaded %v; want still unpatching, loaded", p, perr, e.k.Loaded("lp"))
	}
}
