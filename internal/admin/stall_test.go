package admin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

func TestDiagnose(t *testing.T) {
	tr := livepatch.Transition{Patch: "p", Target: livepatch.StatePatched}
	v612, _ := kernel.ParseVersion("6.12.117+deb12-cloud-amd64")
	v619, _ := kernel.ParseVersion("6.19.1")
	logged := func(reason string, tid int) *livepatch.TransitionLog {
		return &livepatch.TransitionLog{Started: true, Reasons: map[int]livepatch.SwitchReason{
			tid: {Reason: reason, PID: tid, Message: "livepatch: klp_try_switch_task: x:" + reason}}}
	}
	user := livepatch.Task{PID: 300, TID: 300, State: "S"}
	kthread := livepatch.Task{PID: 15, TID: 15, State: "S", KernelThread: true}
	running := kthread
	running.State = "R"
	dstate := user
	dstate.State = "D"
	const tramp = "[<0>] bpf_trampoline_6442513548+0x2e/0x1000"
	traced := map[string]ftrace.Func{"bpf_trampoline_6442513548": {Object: "vmlinux", Name: "f"}}
	for _, tc := range []struct {
		name     string
		task     BlockingTask
		c        stallContext
		cause    Cause
		evidence []string
		advice   string
	}{
		{"unreliable kernel thread", BlockingTask{Task: kthread}, stallContext{version: v612, log: logged(livepatch.ReasonUnreliableStack, 15)},
			CauseUnreliableStack, []string{"kernel log: livepatch: klp_try_switch_task: x:unreliable_stack"},
			"the kernel cannot check this kernel thread until its stack can be unwound again: wait, reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"unreliable user task", BlockingTask{Task: user}, stallContext{version: v612, log: logged(livepatch.ReasonUnreliableStack, 300)},
			CauseUnreliableStack, []string{"kernel log: livepatch: klp_try_switch_task: x:unreliable_stack"},
			"a user task switches when it returns to user space whatever its stack: kgr poke (SIGSTOP and SIGCONT) makes it; else reverse the transition (klp disable p)"},
		{"signalled after a long wait", BlockingTask{Task: dstate}, stallContext{version: v612, signalled: true, why: "the transition ran for more than 20s on a kernel that signals the blocking tasks every 15 seconds"},
			CauseSignalledInVain, []string{"signalled: the transition ran for more than 20s on a kernel that signals the blocking tasks every 15 seconds"},
			"the kernel has signalled the blocking tasks and this one still does not return to user space: it sleeps uninterruptibly (state D), which no signal interrupts; kgr poke wakes a task no better than the kernel's signal, so it is unlikely to help; wait for it to leave the kernel (its I/O, its lock), reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"signalled, running", BlockingTask{Task: livepatch.Task{PID: 300, TID: 300, State: "R"}}, stallContext{version: v612, signalled: true, why: "w"},
			CauseSignalledInVain, []string{"signalled: w"},
			"the kernel has signalled the blocking tasks and this one still does not return to user space: it runs in the kernel without returning to user space; kgr poke wakes a task no better than the kernel's signal, so it is unlikely to help; wait for it to leave the kernel (its I/O, its lock), reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"signalled, otherwise", BlockingTask{Task: user}, stallContext{version: v612, signalled: true, why: "w"},
			CauseSignalledInVain, []string{"signalled: w"},
			"the kernel has signalled the blocking tasks and this one still does not return to user space: it stays in the kernel; kgr poke wakes a task no better than the kernel's signal, so it is unlikely to help; wait for it to leave the kernel (its I/O, its lock), reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"kernel thread on 6.12", BlockingTask{Task: running}, stallContext{version: v612},
			CauseKthreadNeverSleeps, []string{"state R", "from the kernel version (6.12.117): no file tells how kernel threads switch"},
			"on this kernel its next cond_resched() switches it (Linux 6.4 to 6.15; from the kernel version, 6.12.117: no file tells), so it should switch soon; if it stays, it never calls cond_resched(): wait, reverse the transition (klp disable p), or if it never sleeps, force it (klp force p) as a last resort"},
		{"kernel thread logged running, version unknown", BlockingTask{Task: kthread}, stallContext{versionErr: errors.New("no release"), log: logged(livepatch.ReasonRunning, 15)},
			CauseKthreadNeverSleeps, []string{"kernel log: livepatch: klp_try_switch_task: x:running", "state S",
				"the kernel version could not be read (no release), and only the version tells how kernel threads switch"},
			"it switches when the kernel's once-a-second check finds it off the CPU; Linux 6.4 to 6.15 also switch it in cond_resched(), Linux 6.16+ only when it sleeps with TASK_FREEZABLE (the kernel version could not be read, and no file tells): wait, reverse the transition (klp disable p), or if it never sleeps, force it (klp force p) as a last resort"},
		{"sleeping on a function, from the log", BlockingTask{Task: user}, stallContext{version: v619, log: logged(livepatch.ReasonSleepingOnFunction, 300)},
			CausePatchedCode, []string{"kernel log: livepatch: klp_try_switch_task: x:sleeping_on_function"},
			"sleeping in code the patch changes: send it SIGSTOP and SIGCONT (kgr poke) so that it leaves the kernel; if it always returns there, reverse the transition (klp disable p)"},
		{"patched code, kernel thread", BlockingTask{Task: kthread, Culprits: []string{"[<0>] f+0x1/0x2"}}, stallContext{version: v612},
			CausePatchedCode, nil,
			"a kernel thread sleeping in code the patch changes: signals cannot move it; wait for it to leave that function, reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"patched code, D", BlockingTask{Task: dstate, Culprits: []string{"[<0>] f+0x1/0x2"}}, stallContext{version: v612},
			CausePatchedCode, nil, "in uninterruptible sleep: a signal cannot wake it; wait for its I/O, or reverse the transition (klp disable p)"},
		{"patched code, init", BlockingTask{Task: livepatch.Task{PID: 1, TID: 1, State: "S"}, Culprits: []string{"[<0>] f+0x1/0x2"}}, stallContext{version: v612},
			CausePatchedCode, nil, "init (PID 1): it switches on its next exit from the kernel; never stop it, wait or reverse the transition (klp disable p)"},
		{"uninterruptible", BlockingTask{Task: dstate}, stallContext{version: v612},
			CauseUninterruptible, nil, "in uninterruptible sleep: a signal cannot wake it; wait for its I/O, or reverse the transition (klp disable p)"},
		{"init", BlockingTask{Task: livepatch.Task{PID: 1, TID: 1, State: "S"}}, stallContext{version: v612},
			CauseInit, nil, "init (PID 1): it switches on its next exit from the kernel; never stop it, wait or reverse the transition (klp disable p)"},
		{"user task, kernel signals", BlockingTask{Task: user}, stallContext{version: v612, autoSignals: true},
			CauseUserTask, nil, "a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and the kernel signals it every 15 seconds"},
		{"user task, signalling unknown", BlockingTask{Task: user}, stallContext{version: v612},
			CauseUserTask, nil, "a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and Linux 5.1+ signals it every 15 seconds"},
		// A BPF trampoline blocks on the kernels that cannot unwind
		// through one; from 6.19 on, only when the kernel says so.
		{"trampoline on 6.12", BlockingTask{Task: user, Stack: []string{tramp}}, stallContext{version: v612, bpfRead: true, direct: traced},
			CauseBPFTrampoline, []string{"stack: " + tramp + " (traces f)"},
			"detach the BPF program on f (bpftool link lists the programs; an fexit, fmod_ret or LSM program's trampoline stays on the stack while the traced function runs), and the task switches at the kernel's next check; or wait until it leaves that function, reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"trampoline, version unknown", BlockingTask{Task: user, Stack: []string{tramp}}, stallContext{versionErr: errors.New("no release"), bpfRead: true},
			CauseBPFTrampoline, []string{"stack: " + tramp},
			"detach the BPF program (bpftool link lists the programs; an fexit, fmod_ret or LSM program's trampoline stays on the stack while the traced function runs), and the task switches at the kernel's next check; or wait until it leaves that function, reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"trampoline on 6.19, unreliable", BlockingTask{Task: user, Stack: []string{tramp}}, stallContext{version: v619, bpfRead: true, log: logged(livepatch.ReasonUnreliableStack, 300)},
			CauseBPFTrampoline, []string{"kernel log: livepatch: klp_try_switch_task: x:unreliable_stack", "stack: " + tramp},
			"detach the BPF program (bpftool link lists the programs; an fexit, fmod_ret or LSM program's trampoline stays on the stack while the traced function runs), and the task switches at the kernel's next check; or wait until it leaves that function, reverse the transition (klp disable p), or as a last resort force it (klp force p)"},
		{"trampoline on 6.19, kernel silent", BlockingTask{Task: user, Stack: []string{tramp}}, stallContext{version: v619, bpfRead: true},
			CauseUserTask, []string{"stack: " + tramp},
			"a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and Linux 5.1+ signals it every 15 seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.tr = tr
			task := tc.task
			(&System{}).diagnose(&task, &tc.c)
			if task.Cause != tc.cause || task.Advice != tc.advice || strings.Join(task.Evidence, "|") != strings.Join(tc.evidence, "|") {
				t.Errorf("got %s %q\n  %q\nwant %s %q\n  %q", task.Cause, task.Evidence, task.Advice, tc.cause, tc.evidence, tc.advice)
			}
		})
	}
}

func TestKthreadAdviceUnpatching(t *testing.T) {
	v, _ := kernel.ParseVersion("6.16.0")
	c := &stallContext{tr: livepatch.Transition{Patch: "p", Target: livepatch.StateUnpatched}, version: v}
	got := advice(BlockingTask{Task: livepatch.Task{KernelThread: true, State: "R"}, Cause: CauseKthreadNeverSleeps}, c)
	if !strings.Contains(got, "since Linux 6.16") || !strings.Contains(got, "reverse the transition (klp enable p)") {
		t.Errorf("advice %q", got)
	}
}

func TestCauseDescribe(t *testing.T) {
	for _, c := range []Cause{CauseBPFTrampoline, CauseUnreliableStack, CauseSignalledInVain, CausePatchedCode, CauseKthreadNeverSleeps,
		CauseKernelThread, CauseUninterruptible, CauseInit, CauseUserTask} {
		if d := c.Describe(); d == "" || d == string(c) {
			t.Errorf("%s has no description", c)
		}
	}
	if Cause("other").Describe() != "other" {
		t.Error("an unknown cause describes itself")
	}
}

// A wait longer than the kernel's signal period proves the kernel
// signalled, when its log cannot tell (here, no retry ran).
func TestExplainWaited(t *testing.T) {
	e := newEnv(t, fakekernel.Options{AutoTick: -1})
	e.k.BlockTask(200, "busy_work")
	if _, err := e.load(context.Background(), e.patchModule(t, "lp_busy", false, "busy_work"), WaitOptions{Timeout: time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatalf("load: %v", err)
	}
	e.k.Tick()
	for _, tc := range []struct {
		waited time.Duration
		cause  Cause
	}{
		{0, CausePatchedCode},
		{10 * time.Second, CausePatchedCode},
		{17 * time.Second, CauseSignalledInVain},
	} {
		r := e.m.explain(tc.waited)
		if r == nil {
			t.Fatal("no stall report")
		}
		var cause Cause
		for _, task := range r.Tasks {
			if task.TID == 200 {
				cause = task.Cause
			}
		}
		if cause != tc.cause {
			t.Errorf("waited %s: cause %s, want %s", tc.waited, cause, tc.cause)
		}
		if tc.cause == CauseSignalledInVain && (r.Signalled == nil || !*r.Signalled) {
			t.Errorf("waited %s: signalled %v", tc.waited, r.Signalled)
		}
		// The log holds the whole transition, and no signal: not
		// signalled, which is known rather than unknown.
		if tc.cause != CauseSignalledInVain && (r.Signalled == nil || *r.Signalled) {
			t.Errorf("waited %s: signalled %v, want known false", tc.waited, r.Signalled)
		}
	}
}

// SLE 12's kGraft does not name the patch in transition: no advice names a
// command it cannot give.
func TestAdviceUnnamedTransition(t *testing.T) {
	v, _ := kernel.ParseVersion("6.12.117")
	c := &stallContext{tr: livepatch.Transition{Target: livepatch.StatePatched}, version: v}
	for _, tc := range []struct {
		task BlockingTask
		want string
	}{
		{BlockingTask{Task: livepatch.Task{KernelThread: true}, Cause: CauseBPFTrampoline},
			"detach the BPF program (bpftool link lists the programs; an fexit, fmod_ret or LSM program's trampoline stays on the stack while the traced function runs), and the task switches at the kernel's next check; or wait until it leaves that function"},
		{BlockingTask{Task: livepatch.Task{KernelThread: true}, Cause: CauseUnreliableStack},
			"the kernel cannot check this kernel thread until its stack can be unwound again: wait"},
		{BlockingTask{Task: livepatch.Task{State: "S"}, Cause: CauseUnreliableStack},
			"a user task switches when it returns to user space whatever its stack: kgr poke (SIGSTOP and SIGCONT) makes it"},
		{BlockingTask{Task: livepatch.Task{State: "D"}, Cause: CauseSignalledInVain},
			"the kernel has signalled the blocking tasks and this one still does not return to user space: it sleeps uninterruptibly (state D), which no signal interrupts; kgr poke wakes a task no better than the kernel's signal, so it is unlikely to help; wait for it to leave the kernel (its I/O, its lock)"},
		{BlockingTask{Task: livepatch.Task{KernelThread: true, State: "R"}, Cause: CauseKthreadNeverSleeps},
			"on this kernel its next cond_resched() switches it (Linux 6.4 to 6.15; from the kernel version, 6.12.117: no file tells), so it should switch soon; if it stays, it never calls cond_resched(): wait"},
		{BlockingTask{Task: livepatch.Task{KernelThread: true}, Cause: CausePatchedCode, Culprits: []string{"[<0>] f+0x1/0x2"}},
			"a kernel thread sleeping in code the patch changes: signals cannot move it; wait for it to leave that function"},
		{BlockingTask{Task: livepatch.Task{State: "S"}, Cause: CausePatchedCode, Culprits: []string{"[<0>] f+0x1/0x2"}},
			"sleeping in code the patch changes: send it SIGSTOP and SIGCONT (kgr poke) so that it leaves the kernel"},
		{BlockingTask{Task: livepatch.Task{PID: 1}, Cause: CauseInit}, "init (PID 1): it switches on its next exit from the kernel; never stop it, wait"},
		{BlockingTask{Task: livepatch.Task{KernelThread: true}, Cause: CauseKernelThread}, "a kernel thread: signals cannot move it; wait"},
		{BlockingTask{Task: livepatch.Task{State: "D"}, Cause: CauseUninterruptible}, "in uninterruptible sleep: a signal cannot wake it; wait for its I/O"},
	} {
		if got := advice(tc.task, c); got != tc.want {
			t.Errorf("%s: advice\n  %q\nwant\n  %q", tc.task.Cause, got, tc.want)
		}
	}
}

func TestEither(t *testing.T) {
	for _, tc := range []struct {
		ways []string
		want string
	}{
		{nil, ""},
		{[]string{"a", ""}, "a"},
		{[]string{"a", "b"}, "a, or b"},
		{[]string{"a", "", "c"}, "a, or c"},
		{[]string{"a", "b", "c"}, "a, b, or c"},
	} {
		if got := either(tc.ways...); got != tc.want {
			t.Errorf("either(%q) = %q, want %q", tc.ways, got, tc.want)
		}
	}
}

// TestBPFFrame: a frame runs BPF code when it is a trampoline (named by
// its key) or a program; a bare "bpf_trampoline_" with no key is neither.
func TestBPFFrame(t *testing.T) {
	for _, tc := range []struct {
		frame string
		sym   string
		bpf   bool
	}{
		{"[<0>] bpf_trampoline_6442513548+0x2e/0x1000", "bpf_trampoline_6442513548", true},
		{"[<0>] bpf_prog_3b185187f1855c4c_klp_e2e_fexit+0x4c/0x60", "bpf_prog_3b185187f1855c4c_klp_e2e_fexit", true},
		{"[<0>] bpf_trampoline_+0x2e/0x1000", "bpf_trampoline_", false},
		{"[<0>] schedule+0x2e/0x90", "schedule", false},
	} {
		if sym, bpf := bpfFrame(tc.frame); sym != tc.sym || bpf != tc.bpf {
			t.Errorf("bpfFrame(%q) = %q, %v; want %q, %v", tc.frame, sym, bpf, tc.sym, tc.bpf)
		}
	}
}

// A kernel log that can be read only in part still tells what it holds:
// here that the kernel signalled the blocking tasks; the report says why
// the rest could not be read.
func TestExplainPartlyReadLog(t *testing.T) {
	e := newEnv(t, fakekernel.Options{AutoTick: -1})
	e.k.BlockTask(200, "busy_work")
	if _, err := e.load(context.Background(), e.patchModule(t, "lp_busy", false, "busy_work"), WaitOptions{Timeout: time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatalf("load: %v", err)
	}
	e.k.Printk(6, "livepatch: signaling remaining tasks")
	f, err := os.OpenFile(filepath.Join(e.k.DevRoot(), "kmsg"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("garbled\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.m.explain(0)
	if r == nil {
		t.Fatal("no stall report")
	}
	if r.Signalled == nil || !*r.Signalled || r.KernelLogErr == nil {
		t.Errorf("signalled %v, log error %v; want signalled, from the part of the log read, and the error", r.Signalled, r.KernelLogErr)
	}
	for _, task := range r.Tasks {
		if task.TID == 200 && task.Cause != CauseSignalledInVain {
			t.Errorf("task 200: cause %s, want %s", task.Cause, CauseSignalledInVain)
		}
	}
}
