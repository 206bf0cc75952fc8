package fakekernel_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
	"golang.org/x/sys/unix"
)

// A task asleep under an fexit program's trampoline has an unreliable
// stack: it blocks any transition until the program goes, and the stack
// shows the trampoline, as on 6.1 and 6.12.
func TestTrampolineMakesStackUnreliable(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1, DynamicDebug: true, Tracefs: true})
	e.k.BlockTask(15, "schedule_timeout_interruptible") // not a patched function
	id := e.k.AttachBPF(fakekernel.BPFProgram{Name: "klp_e2e_fexit", Attach: kernel.AttachFexit, Function: "schedule_timeout_interruptible"})
	links, err := e.k.BPFLinks()
	if err != nil || len(links) != 1 || links[0].Trampoline == "" || links[0].ID != id {
		t.Fatalf("links %+v %v", links, err)
	}
	tramp := links[0].Trampoline
	if got := e.read("proc/15/task/15/stack"); !strings.HasPrefix(got, "[<0>] "+tramp+"+0x2e/0x1000\n") {
		t.Errorf("stack %q: want the trampoline on top", got)
	}
	if got := e.read("sys/kernel/tracing/enabled_functions"); got != "schedule_timeout_interruptible (1) R   D\ttramp: ftrace_regs_caller+0x0/0x65 (call_direct_funcs+0x0/0x20)\n\tdirect-->"+tramp+"+0x0/0xd8" {
		t.Errorf("enabled_functions %q", got)
	}
	n := len(e.k.Messages())
	e.mustLoad(lp("lp_cmdline", "cmdline_proc_show"))
	e.k.Tick()
	if e.k.TransitionPatch() != "lp_cmdline" {
		t.Fatal("the transition completed under a trampoline")
	}
	want := "livepatch: klp_try_switch_task: kworker/0:1:15 has an unreliable stack"
	if !slices.Contains(e.logSince(n), want) {
		t.Errorf("kernel log %q: no %q", e.logSince(n), want)
	}
	if got := e.read("sys/kernel/tracing/enabled_functions"); !strings.HasPrefix(got, "cmdline_proc_show (1)   I  \ttramp: ftrace_regs_caller+0x0/0x65 (klp_ftrace_handler+0x0/0x100)\n") {
		t.Errorf("enabled_functions with the patch %q", got)
	}
	e.k.DetachBPF(id)
	e.k.Tick()
	if e.k.TransitionPatch() != "" {
		t.Error("the transition did not complete once the program was detached")
	}
}

// fentry does not stay on the stack; the unwinder of 6.19 gets through a
// trampoline.
func TestTrampolineReliable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      fakekernel.Features
		attach string
	}{
		{"fentry", fakekernel.Linux6_12, kernel.AttachFentry},
		{"unwinder fixed", fakekernel.Features{Force: true, Patched: true, TrampolineUnwind: true}, kernel.AttachFmodRet},
	} {
		e := newEnv(t, fakekernel.Options{Features: tc.f, Tracefs: true})
		e.k.BlockTask(15, "schedule_timeout_interruptible")
		e.k.AttachBPF(fakekernel.BPFProgram{Name: "p", Attach: tc.attach, Function: "schedule_timeout_interruptible"})
		e.mustLoad(lp("lp_cmdline", "cmdline_proc_show"))
		e.k.Tick()
		if e.k.TransitionPatch() != "" {
			t.Errorf("%s: the transition did not complete", tc.name)
		}
	}
}

// A patched function with an fmod_ret program: flags R I D (6.1), plus M
// on 6.12.
func TestEnabledFunctionsShared(t *testing.T) {
	for _, tc := range []struct {
		f    fakekernel.Features
		want string
	}{
		{fakekernel.Linux6_1, "security_locked_down (2) R I D ->arch_ftrace_ops_list_func+0x0/0x1d0"},
		{fakekernel.Linux6_12, "security_locked_down (2) R I D   M  ->arch_ftrace_ops_list_func+0x0/0x1d0"},
	} {
		e := newEnv(t, fakekernel.Options{Features: tc.f, Tracefs: true, SwitchOnStart: true})
		e.mustLoad(lp("lp_lockdown", "security_locked_down"))
		e.k.AttachBPF(fakekernel.BPFProgram{Name: "fmodret", Attach: kernel.AttachFmodRet, Function: "security_locked_down"})
		lines := strings.Split(e.read("sys/kernel/tracing/enabled_functions"), "\n")
		if lines[0] != tc.want || !strings.HasPrefix(lines[1], "\tdirect-->bpf_trampoline_") {
			t.Errorf("enabled_functions %q, want %q and a direct line", lines, tc.want)
		}
	}
}

// A kprobe with a post_handler cannot go on a patched function (EBUSY),
// and one already there makes the patch fail (EBUSY); without a
// post_handler it coexists.
func TestKprobes(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Tracefs: true, SwitchOnStart: true})
	if err := e.k.AddKprobe(fakekernel.Kprobe{Function: "cmdline_proc_show", Post: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.read("sys/kernel/debug/kprobes/list"); got != "ffffffff81230000  k  cmdline_proc_show+0x0    [FTRACE]" {
		t.Errorf("kprobes list %q", got)
	}
	if _, err := e.load(lp("lp_cmdline", "cmdline_proc_show")); err == nil {
		t.Error("a patch loaded over a kprobe with a post_handler")
	}
	e.k.RemoveKprobes("cmdline_proc_show")
	e.mustLoad(lp("lp_version", "version_proc_show"))
	wantErrno(t, e.k.AddKprobe(fakekernel.Kprobe{Function: "version_proc_show", Post: true}), unix.EBUSY)
	if err := e.k.AddKprobe(fakekernel.Kprobe{Function: "version_proc_show"}); err != nil {
		t.Errorf("a kprobe without a post_handler on a patched function: %v", err)
	}
}

// A kernel thread that runs without sleeping blocks on 6.1 and 6.16 and
// switches in cond_resched() on 6.12.
func TestRunningKthread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      fakekernel.Features
		blocks bool
	}{
		{"6.1", fakekernel.Linux6_1, true},
		{"6.12", fakekernel.Linux6_12, false},
		{"6.16", fakekernel.Linux6_16, true},
	} {
		e := newEnv(t, fakekernel.Options{Features: tc.f, DynamicDebug: true, Tracefs: true})
		e.k.SetRunning(15, true)
		if got := e.read("proc/15/task/15/stat"); !strings.Contains(got, ") R ") {
			t.Errorf("%s: stat %q, want state R", tc.name, got)
		}
		n := len(e.k.Messages())
		e.mustLoad(lp("lp_cmdline", "cmdline_proc_show"))
		e.k.Tick()
		if blocked := e.k.TransitionPatch() != ""; blocked != tc.blocks {
			t.Errorf("%s: blocked %v, want %v", tc.name, blocked, tc.blocks)
		}
		if tc.blocks && !slices.Contains(e.logSince(n), "livepatch: klp_try_switch_task: kworker/0:1:15 is running") {
			t.Errorf("%s: kernel log %q", tc.name, e.logSince(n))
		}
	}
}

// The kernel signals a blocked user task in uninterruptible sleep in vain;
// the reason logged each second is the patched function.
func TestSignalledInVain(t *testing.T) {
	e := newEnv(t, fakekernel.Options{DynamicDebug: true, Tracefs: true, Release: "6.12.117+deb12-cloud-amd64"})
	e.k.BlockTask(200, "cmdline_proc_show")
	e.k.SetUninterruptible(200, true)
	e.mustLoad(lp("lp_cmdline", "cmdline_proc_show"))
	n := len(e.k.Messages())
	for i := 0; i < 17; i++ {
		e.k.Tick()
	}
	log := e.logSince(n)
	if !slices.Contains(log, "livepatch: signaling remaining tasks") || !slices.Contains(log, "livepatch: klp_try_switch_task: app:200 is sleeping on function cmdline_proc_show") {
		t.Errorf("kernel log %q", log)
	}
	if e.k.TransitionPatch() == "" {
		t.Error("the signal moved a task in uninterruptible sleep")
	}
	if got := e.read("proc/sys/kernel/osrelease"); got != "6.12.117+deb12-cloud-amd64" {
		t.Errorf("osrelease %q", got)
	}
	if got := e.read("sys/kernel/debug/dynamic_debug/control"); !strings.Contains(got, "[livepatch]klp_try_switch_task =p \"%s: %s:%d has an unreliable stack\\012\"") {
		t.Errorf("dynamic_debug/control %q", got)
	}
}
