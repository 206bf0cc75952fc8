package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/kernel"
)

// whyDoc runs blocking --why --json and returns its stall.
func (v *verbEnv) whyDoc() *report.Stall {
	v.t.Helper()
	if code := v.run("--json", "blocking", "--why"); code != ExitOK {
		v.t.Fatalf("blocking --why --json: exit %d %s", code, v.errOut)
	}
	var doc struct {
		Stall *report.Stall `json:"stall"`
	}
	if err := json.Unmarshal(v.out.Bytes(), &doc); err != nil || doc.Stall == nil {
		v.t.Fatalf("blocking --why --json: %v\n%s", err, v.out)
	}
	return doc.Stall
}

// why runs blocking --why and returns its text.
func (v *verbEnv) why() string {
	v.t.Helper()
	if code := v.run("blocking", "--why"); code != ExitOK {
		v.t.Fatalf("blocking --why: exit %d %s", code, v.errOut)
	}
	return v.out.String()
}

func (v *verbEnv) setRelease(rel string) {
	v.t.Helper()
	if err := os.WriteFile(filepath.Join(v.k.ProcRoot(), "sys", "kernel", "osrelease"), []byte(rel+"\n"), 0o644); err != nil {
		v.t.Fatal(err)
	}
}

// noTick leaves the fake kernel's retries to the test (Kernel.Tick): what
// the kernel logged, and whether it signalled, then depends on nothing
// else.
const noTick = 1 << 40

func wantIn(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s: no %q in:\n%s", what, s, text)
		}
	}
}

// A kernel thread asleep under an fexit program's trampoline: the stall
// report names the trampoline, the program and the function it traces,
// quotes the kernel's log line, and says to detach the program.
func TestWhyBPFTrampoline(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1, DynamicDebug: true, Tracefs: true, AutoTick: noTick})
	v.k.BlockTask(15, "schedule_timeout_interruptible")
	v.k.AttachBPF(fakekernel.BPFProgram{Name: "klp_e2e_fexit", Attach: kernel.AttachFexit, Function: "schedule_timeout_interruptible"})
	path := v.module("lp_cmdline", "cmdline_proc_show")
	if code := v.run("load", "--timeout", "50ms", "--on-stall", "leave", path); code != ExitStalled {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	v.setRelease("6.1.0-56-cloud-amd64")
	v.k.Tick() // the kernel's retry logs its reason
	wantIn(t, "load's stall report", v.out.String(), "cause: a BPF trampoline on its stack")
	out := v.why()
	wantIn(t, "blocking --why", out,
		"  15/15 kworker/0:1 (kernel thread, state S): [kworker/0:1]",
		"    cause: a BPF trampoline on its stack, which the kernel cannot unwind through\n",
		"      kernel log: livepatch: klp_try_switch_task: kworker/0:1:15 has an unreliable stack\n",
		"(traces schedule_timeout_interruptible; BPF fexit program klp_e2e_fexit (id 101, link 1))",
		"    advice: detach the BPF program on schedule_timeout_interruptible (bpftool link",
		"reverse the transition (klp disable lp_cmdline), or as a last resort force it (klp force lp_cmdline)")
	if strings.Contains(out, "does not log why") {
		t.Errorf("the reasons are logged, yet:\n%s", out)
	}
	s := v.whyDoc()
	if len(s.Tasks) != 1 {
		t.Fatalf("tasks %+v", s.Tasks)
	}
	task := s.Tasks[0]
	if task.Cause != "bpf_trampoline" || task.KernelReason == nil || len(task.BPFFrames) != 1 ||
		task.BPFFrames[0].Function == nil || *task.BPFFrames[0].Function != "schedule_timeout_interruptible" ||
		len(task.BPFFrames[0].Programs) != 1 || task.BPFFrames[0].Programs[0].Attach != "fexit" {
		t.Errorf("task %+v", task)
	}
	if s.KernelReasons == nil || *s.KernelReasons != "logged" || s.KernelLogError != nil {
		t.Errorf("kernel reasons %v, log error %v", s.KernelReasons, s.KernelLogError)
	}
}

// Without the programs (not listed), the frame is still the cause, and the
// function it traces comes from enabled_functions.
func TestWhyBPFTrampolineUnlisted(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1, Tracefs: true, AutoTick: noTick})
	v.k.BlockTask(15, "schedule_timeout_interruptible")
	v.k.AttachBPF(fakekernel.BPFProgram{Name: "p", Attach: kernel.AttachFmodRet, Function: "schedule_timeout_interruptible"})
	v.k.InjectBPFError(kernel.ErrPermission)
	if code := v.run("load", "--timeout", "50ms", "--on-stall", "leave", v.module("lp_cmdline", "cmdline_proc_show")); code != ExitStalled {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	v.setRelease("6.1.0-56-cloud-amd64")
	v.k.Tick()
	out := v.why()
	wantIn(t, "blocking --why", out, "cause: a BPF trampoline on its stack", "(traces schedule_timeout_interruptible)\n",
		"The kernel does not log why it cannot switch a task; to have it log its reasons: echo 'func klp_try_switch_task +p' > "+
			filepath.Join(v.k.SysRoot(), "kernel", "debug", "dynamic_debug", "control"))
	s := v.whyDoc()
	if f := s.Tasks[0].BPFFrames; len(f) != 1 || len(f[0].Programs) != 0 || f[0].Function == nil {
		t.Errorf("frames %+v", f)
	}
	// A kernel whose unwinder gets through trampolines (6.19+): the frame
	// is no cause without the kernel's word.
	v.setRelease("6.19.1")
	if s := v.whyDoc(); s.Tasks[0].Cause != "kernel_thread" || len(s.Tasks[0].BPFFrames) != 1 {
		t.Errorf("6.19: cause %s, frames %+v", s.Tasks[0].Cause, s.Tasks[0].BPFFrames)
	}
}

// A user task in uninterruptible sleep in a patched function: after the
// kernel's fake signal, the cause says it was signalled in vain.
func TestWhySignalledInVain(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{DynamicDebug: true, Tracefs: true, AutoTick: noTick})
	v.k.BlockTask(200, "busy_work")
	v.k.SetUninterruptible(200, true)
	if code := v.run("load", "--timeout", "20ms", "--on-stall", "leave", v.module("lp_busy", "busy_work")); code != ExitStalled {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	for i := 0; i < 16; i++ { // the kernel signals at its 15th retry
		v.k.Tick()
	}
	out := v.why()
	wantIn(t, "blocking --why", out,
		"The kernel has signalled the blocking tasks (it does every 15 seconds).\n",
		"    cause: signalled by the kernel in vain: it does not return to user space\n",
		"      kernel log: livepatch: klp_try_switch_task: app:200 is sleeping on function busy_work\n",
		"      signalled: the kernel logged \"signaling remaining tasks\"\n",
		"advice: the kernel has signalled the blocking tasks and this one still does not return to user space: it sleeps uninterruptibly (state D), which no signal interrupts; kgr poke wakes a task no better than the kernel's signal")
	s := v.whyDoc()
	if s.KernelSignalled == nil || !*s.KernelSignalled || s.Tasks[0].Cause != "signalled_in_vain" {
		t.Errorf("signalled %v, cause %s", s.KernelSignalled, s.Tasks[0].Cause)
	}
}

// A blocked user task before the kernel's first signal is not "in vain".
func TestWhyNotSignalledYet(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{AutoTick: noTick})
	v.k.BlockTask(200, "busy_work")
	if code := v.run("load", "--timeout", "20ms", "--on-stall", "leave", v.module("lp_busy", "busy_work")); code != ExitStalled {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	v.k.Tick()
	s := v.whyDoc()
	var cause string
	for _, task := range s.Tasks {
		if task.TID == 200 {
			cause = task.Cause
		}
	}
	if s.KernelSignalled == nil || *s.KernelSignalled || cause != "patched_code_on_stack" {
		t.Errorf("signalled %v, cause of 200 %q", s.KernelSignalled, cause)
	}
	if s.KernelReasons != nil {
		t.Errorf("no dynamic_debug/control, yet kernel_reasons %q", *s.KernelReasons)
	}
}

// A kernel thread that runs: the advice follows the kernel version and
// says that only the version tells.
func TestWhyKthreadNeverSleeps(t *testing.T) {
	for _, tc := range []struct {
		f       fakekernel.Features
		release string
		version string
		want    string
	}{
		{fakekernel.Linux6_1, "6.1.0-56-cloud-amd64", "6.1.0", "before Linux 6.4 a running kernel thread switches only when the kernel's once-a-second check finds it off the CPU (from the kernel version, 6.1.0: no file tells)"},
		{fakekernel.Linux6_16, "6.16.2-arch1", "6.16.2", "since Linux 6.16 cond_resched() no longer switches a kernel thread: it switches only when it sleeps with TASK_FREEZABLE, or when the kernel's once-a-second check finds it off the CPU (from the kernel version, 6.16.2: no file tells)"},
	} {
		v := newVerbEnv(t, fakekernel.Options{Features: tc.f, DynamicDebug: true, AutoTick: noTick})
		v.k.SetRunning(15, true)
		if code := v.run("load", "--timeout", "50ms", "--on-stall", "leave", v.module("lp_cmdline", "cmdline_proc_show")); code != ExitStalled {
			t.Fatalf("%s: load: exit %d %s", tc.release, code, v.errOut)
		}
		v.setRelease(tc.release)
		v.k.Tick()
		out := v.why()
		wantIn(t, tc.release, out, "  15/15 kworker/0:1 (kernel thread, state R)",
			"    cause: a kernel thread that runs without sleeping\n",
			"      kernel log: livepatch: klp_try_switch_task: kworker/0:1:15 is running\n",
			"      from the kernel version ("+tc.version+"): no file tells how kernel threads switch\n",
			tc.want)
	}
	// 6.12: cond_resched() switches it, so no stall; the advice for a
	// kernel of that version is tested in package admin.
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux6_12}) // ticks every 2 ms
	v.k.SetRunning(15, true)
	if code := v.run("load", "--timeout", "5s", v.module("lp_cmdline", "cmdline_proc_show")); code != ExitOK {
		t.Errorf("6.12: load: exit %d %s", code, v.errOut)
	}
}

// An fmod_ret program on a patched function: list, patches -v and
// preflight say that it overrides the patch.
func TestOverrideReports(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Tracefs: true})
	path := v.module("lp_lockdown", "security_locked_down")
	v.k.AttachBPF(fakekernel.BPFProgram{Name: "klp_e2e_fmodret", Attach: kernel.AttachFmodRet, Function: "security_locked_down"})
	if code := v.run("load", path); code != ExitOK {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	// The kernel takes the patch without a word; klp load says it.
	wantIn(t, "load", v.errOut.String(), "klp: warning: BPF fmod_ret program klp_e2e_fmodret (id 101, link 1) overrides the patch of security_locked_down: callers get its value, not the patched code's (klp list)\n")
	if code := v.run("--json", "unload", "lp_lockdown"); code != ExitOK {
		t.Fatalf("unload: exit %d %s", code, v.errOut)
	}
	if code := v.run("--json", "load", path); code != ExitOK {
		t.Fatalf("load --json: exit %d %s", code, v.errOut)
	}
	var o report.Outcome
	if err := json.Unmarshal(v.out.Bytes(), &o); err != nil || len(o.Notes) != 1 || !strings.HasPrefix(o.Notes[0], "warning: BPF fmod_ret program klp_e2e_fmodret") {
		t.Errorf("load --json notes %q %v", o.Notes, err)
	}
	if code := v.run("list"); code != ExitOK {
		t.Fatalf("list: exit %d %s", code, v.errOut)
	}
	wantIn(t, "list", v.out.String(), "\nOther users of the patched functions:\n  vmlinux security_locked_down: BPF fmod_ret program klp_e2e_fmodret (id 101, link 1): OVERRIDES THE PATCH: callers get its value, the patched code does not run, and the kernel says nothing\n")
	if code := v.run("--json", "list"); code != ExitOK {
		t.Fatalf("list --json: exit %d", code)
	}
	var l report.List
	if err := json.Unmarshal(v.out.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Functions) != 1 || l.Functions[0].OtherUsers == nil || len(*l.Functions[0].OtherUsers) != 1 ||
		(*l.Functions[0].OtherUsers)[0].Effect != "overrides" || l.OtherUsersError != nil {
		t.Errorf("list --json functions %+v, error %v", l.Functions, l.OtherUsersError)
	}
	if code := v.run("-v", "patches"); code != ExitOK {
		t.Fatalf("patches -v: exit %d", code)
	}
	wantIn(t, "patches -v", v.out.String(), "lp_lockdown\n    active: 1\n    overridden: security_locked_down by BPF fmod_ret program klp_e2e_fmodret (id 101, link 1)\n")
	if code := v.run("patches"); code != ExitOK || v.out.String() != "lp_lockdown\n" {
		t.Errorf("patches: exit %d %q", code, v.out)
	}
	// Without the programs, the trampoline may override.
	v.k.InjectBPFError(kernel.ErrPermission)
	if code := v.run("-v", "patches"); code != ExitOK {
		t.Fatalf("patches -v: exit %d", code)
	}
	wantIn(t, "patches -v, programs not listed", v.out.String(), "    may be overridden: security_locked_down by a direct call (BPF trampoline): flag D in ")
}

// On a copied tree nothing can be read: list says so.
func TestOverrideNotChecked(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	if code := v.run("load", v.module("lp_cmdline", "cmdline_proc_show")); code != ExitOK {
		t.Fatalf("load: exit %d %s", code, v.errOut)
	}
	v.k.InjectBPFError(kernel.ErrNotLive)
	if code := v.run("list"); code != ExitOK {
		t.Fatalf("list: exit %d", code)
	}
	wantIn(t, "list", v.out.String(), "\nOther users of the patched functions: not checked (read the other users of the patched functions: open ")
}
