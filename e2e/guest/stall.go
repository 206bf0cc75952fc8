package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// The stall causes of 2025-2026 and the silent overrides, on the real
// kernels: a task under a BPF trampoline (klp-stall-bpf), a user task the
// kernel signals in vain (klp-stall-invain), and BPF programs and kprobes
// on a patched function (klp-override). docs/kernel-notes.md records what
// they showed.

const (
	dyndbgControl   = "/sys/kernel/debug/dynamic_debug/control"
	enabledFuncs    = "/sys/kernel/tracing/enabled_functions"
	kprobeList      = "/sys/kernel/debug/kprobes/list"
	switchReasonsOn = "func klp_try_switch_task +p"
)

// whyTask is a task of a stall report, with the fields of the stall
// causes.
type whyTask struct {
	PID, TID     int
	Comm         string   `json:"comm"`
	KernelThread bool     `json:"kernel_thread"`
	State        string   `json:"state"`
	Stack        []string `json:"stack"`
	Culprits     []string `json:"culprits"`
	Cause        string   `json:"cause"`
	Evidence     []string `json:"evidence"`
	KernelReason *string  `json:"kernel_reason"`
	BPFFrames    []struct {
		Frame    string  `json:"frame"`
		Symbol   string  `json:"symbol"`
		Function *string `json:"function"`
		Programs []struct {
			Name      string `json:"name"`
			ProgramID uint32 `json:"program_id"`
			LinkID    uint32 `json:"link_id"`
			Attach    string `json:"attach"`
		} `json:"programs"`
	} `json:"bpf_frames"`
	Advice string `json:"advice"`
}

type whyStall struct {
	Patch           string    `json:"patch"`
	Tasks           []whyTask `json:"tasks"`
	KernelSignalled *bool     `json:"kernel_signalled"`
	KernelReasons   *string   `json:"kernel_reasons"`
}

// why runs klp blocking --why and --why --json.
func (r *runner) why(check string) (string, *whyStall) {
	text := klp("blocking", "--why")
	r.expect(check+"-text-exit", text.code == 0, "klp blocking --why: %v", text)
	js := klp("--json", "blocking", "--why")
	var doc struct {
		Stall *whyStall `json:"stall"`
	}
	err := decodeJSON(js.stdout, &doc, "stall")
	r.expect(check+"-json", js.code == 0 && err == nil && doc.Stall != nil, "klp --json blocking --why: decode error %v; %v", err, js)
	return text.stdout, doc.Stall
}

func taskOf(st *whyStall, tid int) *whyTask {
	if st == nil {
		return nil
	}
	for i := range st.Tasks {
		if st.Tasks[i].TID == tid {
			return &st.Tasks[i]
		}
	}
	return nil
}

// noteText records a command's output line by line, for the docs.
func (r *runner) noteText(key, text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		r.note(key, "%s", l)
	}
}

// switchReasons turns the kernel's reasons on or off.
func (r *runner) switchReasons(on bool) error {
	if on {
		r.atCleanup(func() { _ = writeFile(dyndbgControl, "func klp_try_switch_task -p") })
		return writeFile(dyndbgControl, switchReasonsOn)
	}
	return writeFile(dyndbgControl, "func klp_try_switch_task -p")
}

// scenarioKlpStallBPF parks the target module's kthread under a BPF
// fexit program's trampoline, in schedule_timeout_interruptible() (a
// vmlinux function it sleeps in between rounds, outside any patched
// function), and loads a patch of something else: the kernel cannot unwind
// the kthread's stack, so the transition stalls until the program goes.
func scenarioKlpStallBPF(r *runner) {
	// The version rule for kernel threads, against the symbols that show
	// it: 6.4 to 6.15 switch a kernel thread in cond_resched().
	b, _ := os.ReadFile("/proc/kallsyms")
	hook := strings.Contains(string(b), " klp_cond_resched\n") || strings.Contains(string(b), " __klp_sched_try_switch\n")
	for _, sym := range []string{"klp_cond_resched", "__klp_sched_try_switch", "sched_dynamic_klp_enable"} {
		r.note("kallsyms", "%s %v", sym, strings.Contains(string(b), " "+sym+"\n"))
	}
	if dd, err := readTrim(dyndbgControl); err == nil {
		for _, l := range lines(dd) {
			if strings.Contains(l, "klp_try_switch_task") {
				r.note("dyndbg-sites", "%s", l)
			}
		}
	}
	r.expect("cond-resched-rule", hook == (r.kernelAtLeast(6, 4) && !r.kernelAtLeast(6, 16)),
		"kallsyms has the cond_resched() hook (klp_cond_resched, __klp_sched_try_switch): %v; the version rule klp applies says %v", hook, r.kernelAtLeast(6, 4))

	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	kt, ok := findTask("klp_e2e_busy")
	r.must(r.expect("kthread-found", ok, "kthread klp_e2e_busy in /proc"))
	r.note("module-btf", "/sys/kernel/btf/klp_e2e_target exists: %v", exists("/sys/kernel/btf/klp_e2e_target"))
	p, err := attachNop("fexit", "schedule_timeout_interruptible", "klp_e2e_fexit")
	r.must(r.expectNoErr("attach-fexit", err, "BPF fexit program on schedule_timeout_interruptible (cilium/ebpf)"))
	r.atCleanup(p.Close)
	var stack string
	waitFor(5*time.Second, func() bool {
		stack, _ = readTrim(taskPath(kt, "stack"))
		return strings.Contains(stack, "bpf_trampoline_")
	})
	tramp := ""
	for _, l := range lines(stack) {
		if fn := frameFunc(strings.TrimSpace(l)); strings.HasPrefix(fn, "bpf_trampoline_") {
			tramp = fn
		}
	}
	r.must(r.expect("stack-trampoline", tramp != "", "the kthread's stack shows the trampoline where the traced function was: %q", stack))
	r.note("kthread-stack", "%q", stack)
	ef, _ := readTrim(enabledFuncs)
	r.note("enabled-functions", "%q", ef)
	r.expect("enabled-direct", strings.Contains(ef, "schedule_timeout_interruptible (1) R   D") && strings.Contains(ef, "direct-->"+tramp+"+"),
		"enabled_functions: flags R and D, and the trampoline of the stack as the direct call: %q", ef)

	// The kernel's reasons off (the default): klp names the frame.
	o, _ := r.klpVerb("load-stalled", 3, []string{"left in transition"}, "load", "--timeout", "4s", "--on-stall", "leave", moduleFile("klp_e2e_cmdline"))
	if r.expect("load-stall", o.Stall != nil, "the outcome has a stall report: %+v", o) {
		var found bool
		for _, t := range o.Stall.Tasks {
			found = found || t.TID == kt.tid
		}
		r.expect("load-stall-kthread", found, "the stall report lists klp_e2e_busy (%d): %+v", kt.tid, o.Stall.Tasks)
	}
	out, st := r.why("why-off")
	r.noteText("why-off", out)
	t := taskOf(st, kt.tid)
	if r.expect("why-off-task", t != nil, "klp_e2e_busy in the report: %+v", st) {
		fnOK := len(t.BPFFrames) == 1 && t.BPFFrames[0].Function != nil && *t.BPFFrames[0].Function == "schedule_timeout_interruptible"
		progOK := fnOK && len(t.BPFFrames[0].Programs) == 1 && t.BPFFrames[0].Programs[0].Name == "klp_e2e_fexit" &&
			t.BPFFrames[0].Programs[0].Attach == "fexit" && t.BPFFrames[0].Programs[0].ProgramID == uint32(p.progID) &&
			t.BPFFrames[0].Programs[0].LinkID == uint32(p.linkID) && t.BPFFrames[0].Symbol == tramp
		r.expect("why-off-cause", t.Cause == "bpf_trampoline" && t.KernelReason == nil && fnOK && progOK &&
			strings.Contains(t.Advice, "detach the BPF program on schedule_timeout_interruptible"),
			"cause bpf_trampoline, the frame %s tracing schedule_timeout_interruptible with program klp_e2e_fexit (id %d, link %d), no kernel reason yet: %+v",
			tramp, p.progID, p.linkID, *t)
	}
	r.expect("why-off-reasons", st != nil && st.KernelReasons != nil && *st.KernelReasons == "not_logged" &&
		strings.Contains(out, "The kernel does not log why it cannot switch a task; to have it log its reasons: echo '"+switchReasonsOn+"' > "+dyndbgControl),
		"the report says the kernel's reasons are off and how to turn them on: %v", st)

	// The kernel's reasons on: the kernel says "unreliable stack".
	seq := kmsgLastSeq()
	r.must(r.expectNoErr("reasons-on", r.switchReasons(true), "echo '%s' > %s", switchReasonsOn, dyndbgControl))
	want := fmt.Sprintf("livepatch: klp_try_switch_task: klp_e2e_busy:%d has an unreliable stack", kt.tid)
	logged := waitFor(10*time.Second, func() bool { return kmsgHas(seq, want) })
	r.expect("kmsg-unreliable", logged, "the kernel logs %q: %q", want, kmsgSince(seq))
	out, st = r.why("why-on")
	r.noteText("why-on", out)
	t = taskOf(st, kt.tid)
	r.expect("why-on-cause", t != nil && t.Cause == "bpf_trampoline" && t.KernelReason != nil && *t.KernelReason == want &&
		strings.Contains(out, "      kernel log: "+want+"\n") && st.KernelReasons != nil && *st.KernelReasons == "logged",
		"the report quotes the kernel's line %q: %+v", want, t)

	// The program goes: the next retry switches the kthread. The kernel
	// retries every second, so the transition may be over before wait
	// starts: the wait names the patch, as the lifecycle scenario's does.
	p.Close()
	r.klpVerb("wait-detached", 0, []string{"patched"}, "wait", "--timeout", "15s", "klp_e2e_cmdline")
	r.expectEnabledSettled("detached-done", "klp_e2e_cmdline", "after the wait")

	// An fentry program returns before the traced function runs: its
	// trampoline is not on the sleeping kthread's stack, and the
	// unpatching transition completes beside it.
	f, err := attachNop("fentry", "schedule_timeout_interruptible", "klp_e2e_fentry")
	r.must(r.expectNoErr("attach-fentry", err, "BPF fentry program on schedule_timeout_interruptible (cilium/ebpf)"))
	r.atCleanup(f.Close)
	ef, _ = readTrim(enabledFuncs)
	r.note("enabled-functions-fentry", "%q", ef)
	var seen bool
	for i := 0; i < 20; i++ { // the kthread wakes every few milliseconds
		st, _ := readTrim(taskPath(kt, "stack"))
		seen = seen || strings.Contains(st, "bpf_trampoline_")
		time.Sleep(50 * time.Millisecond)
	}
	r.expect("fentry-off-stack", !seen && strings.Contains(ef, "schedule_timeout_interruptible (1) R   D"),
		"an fentry trampoline (flag D) never shows on the kthread's stack: seen %v; %q", seen, ef)
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_cmdline")
	f.Close()
}

// scenarioKlpStallInVain holds a reader of /proc/klp_e2e_target in
// uninterruptible sleep inside the patched function: the kernel's fake
// signal, 15 seconds in, cannot move it, and klp says so.
func scenarioKlpStallInVain(r *runner) {
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.must(r.expectNoErr("block-read", writeFile(targetParams+"block_read", "1"), "block_read"))
	r.must(r.expectNoErr("read-d", writeFile(targetParams+"read_uninterruptible", "1"), "read_uninterruptible"))
	c, err := r.start(nil, "cat", targetProc)
	r.must(r.expectNoErr("reader", err, "cat %s", targetProc))
	r.must(r.expect("reader-waiting", waitFor(5*time.Second, func() bool { return readIntOr(targetParams+"read_waiting") == 1 }),
		"the reader sleeps in klp_e2e_target_read()"))
	reader := taskID{pid: c.cmd.Process.Pid, tid: c.cmd.Process.Pid}
	seq := kmsgLastSeq()
	o, _ := r.klpVerb("load-stalled", 3, []string{"left in transition"}, "load", "--timeout", "20s", "--on-stall", "leave", moduleFile("klp_e2e_target_patch"))
	r.expect("kmsg-signal", kmsgHas(seq, "livepatch: signaling remaining tasks"), "the kernel signalled: %q", kmsgSince(seq))
	r.expect("reader-still", taskState(reader) == "D" && readIntOr(targetParams+"read_waiting") == 1,
		"the reader is still asleep in the patched function, state %s", taskState(reader))
	var found bool
	if o.Stall != nil {
		for _, t := range o.Stall.Tasks {
			found = found || t.TID == reader.tid
		}
	}
	r.expect("load-stall-reader", found, "the load's stall report lists the reader: %+v", o.Stall)
	out, st := r.why("why")
	r.noteText("why", out)
	t := taskOf(st, reader.tid)
	r.expect("why-cause", t != nil && t.Cause == "signalled_in_vain" && st.KernelSignalled != nil && *st.KernelSignalled &&
		strings.Contains(t.Advice, "it sleeps uninterruptibly (state D)") &&
		strings.Contains(out, "The kernel has signalled the blocking tasks") &&
		strings.Contains(out, "      signalled: the kernel logged \"signaling remaining tasks\"\n"),
		"the reader was signalled in vain: %+v", t)
	r.must(r.expectNoErr("release", writeFile(targetParams+"block_read", "0"), "release the reader"))
	// Named: the released reader may let the kernel finish before klp
	// starts (seen on 6.1 under load), and a wait for "the transition in
	// progress" would then rightly find none.
	r.klpVerb("wait", 0, []string{"patched"}, "wait", "--timeout", "15s", "klp_e2e_target_patch")
	r.expectEnabledSettled("wait-kernel", "klp_e2e_target_patch", "after the wait")
	r.expect("reader-exited", c.exited(5*time.Second), "the reader finished once released")
}

// openDevMem opens /dev/mem and returns "OK" or the errno's name: the
// answer of security_locked_down(LOCKDOWN_DEV_MEM), which
// klp_e2e_lockdown patches.
func openDevMem() string {
	fd, err := syscall.Open("/dev/mem", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return errnoName(errnoOf(err))
	}
	syscall.Close(fd)
	return "OK"
}

// scenarioKlpOverride puts BPF programs and kprobes on patched functions:
// an fmod_ret program wins over a live patch without a word (the kernel
// takes both), an fentry program only observes, a kprobe with a
// post_handler and a patch exclude each other (EBUSY). preflight warns
// before, load, list and patches -v after.
func scenarioKlpOverride(r *runner) {
	devMem, err := enumValue("lockdown_reason", "LOCKDOWN_DEV_MEM")
	r.must(r.expectNoErr("enum", err, "LOCKDOWN_DEV_MEM from the kernel's BTF"))
	r.expect("devmem-unpatched", openDevMem() == "OK", "open(/dev/mem) as root on an unpatched kernel: %s", openDevMem())
	var res result

	// Before the load: an fmod_ret program answers for LOCKDOWN_DEV_MEM.
	p, err := attachFmodRetArg0("security_locked_down", "klp_e2e_fmodret", int32(devMem), -int32(syscall.ENOKEY))
	r.must(r.expectNoErr("attach-fmod-ret", err, "BPF fmod_ret program on security_locked_down (cilium/ebpf)"))
	r.atCleanup(p.Close)
	r.expect("devmem-fmod-ret", openDevMem() == "errno 126 (required key not available)", "the program answers: %s", openDevMem())
	pre := klp("-v", "preflight", moduleFile("klp_e2e_lockdown"))
	r.noteText("preflight", pre.stdout)
	wantProg := fmt.Sprintf("BPF fmod_ret program klp_e2e_fmodret (id %d, link %d)", p.progID, p.linkID)
	r.expect("preflight-warns", pre.code == 0 && strings.Contains(pre.stdout, "WARN  Silent overrides: a BPF program would override the patch of 1 function without a word: security_locked_down in vmlinux") &&
		strings.Contains(pre.stdout, "security_locked_down in vmlinux: "+wantProg),
		"preflight warns and names %s: %v", wantProg, pre)

	res = klp("load", moduleFile("klp_e2e_lockdown"))
	r.noteText("load-stderr", res.stderr)
	r.noteText("load-stdout", res.stdout)
	warning := fmt.Sprintf("klp: warning: %s overrides the patch of security_locked_down: callers get its value, not the patched code's (klp list)\n", wantProg)
	r.expect("load-warns", res.code == 0 && strings.Contains(res.stderr, warning) && strings.HasPrefix(res.stdout, "klp_e2e_lockdown: patched ("),
		"the kernel took the patch; klp load says who overrides it: %v", res)
	r.expect("devmem-overridden", openDevMem() == "errno 126 (required key not available)",
		"with the patch loaded the program still answers, silently: %s", openDevMem())
	ef, _ := readTrim(enabledFuncs)
	r.note("enabled-functions-both", "%q", ef)
	r.expect("enabled-both", strings.Contains(ef, "security_locked_down (2) R I D"), "flags of a patched function with an fmod_ret program: %q", ef)

	list := klp("list")
	r.noteText("list", list.stdout)
	r.expect("list-warns", list.code == 0 && strings.Contains(list.stdout, "  vmlinux security_locked_down: "+wantProg+": OVERRIDES THE PATCH"),
		"list names the program that overrides the patch: %v", list)
	r.checkListUsers("list-json", "security_locked_down", "bpf_fmod_ret", "overrides", p)
	pv := klp("-v", "patches")
	r.expect("patches-v-warns", pv.code == 0 && strings.Contains(pv.stdout, "klp_e2e_lockdown\n    active: 1\n    overridden: security_locked_down by "+wantProg+"\n"),
		"patches -v: %v", pv)

	// A kprobe with a post_handler cannot go on the patched function.
	res = insmod("klp_e2e_kprobe", "symbol=security_locked_down")
	r.expect("kprobe-post-refused", res.code != 0 && strings.Contains(res.stderr, "busy"), "register_kprobe with a post_handler on a patched function: %v", res)

	// Without the program, the patch answers; an fentry program only
	// observes.
	p.Close()
	r.expect("devmem-patched", openDevMem() == "EACCES", "the patch answers once the program is gone: %s", openDevMem())
	f, err := attachNop("fentry", "security_locked_down", "klp_e2e_fentry")
	r.must(r.expectNoErr("attach-fentry", err, "BPF fentry program on security_locked_down"))
	r.atCleanup(f.Close)
	r.expect("devmem-fentry", openDevMem() == "EACCES", "an fentry program does not change the answer: %s", openDevMem())
	r.checkListUsers("list-json-fentry", "security_locked_down", "bpf_fentry", "coexists", f)
	pv = klp("-v", "patches")
	r.expect("patches-v-fentry", pv.code == 0 && !strings.Contains(pv.stdout, "overridden"), "an observer is no override: %v", pv)
	f.Close()

	// An fmod_ret program attached to the function already patched: the
	// kernel takes it, logs nothing, and it answers.
	seq := kmsgLastSeq()
	p2, err := attachFmodRetArg0("security_locked_down", "klp_e2e_fmodret", int32(devMem), -int32(syscall.ENOKEY))
	r.must(r.expectNoErr("attach-fmod-ret-after", err, "BPF fmod_ret program on the patched security_locked_down"))
	r.atCleanup(p2.Close)
	r.expect("devmem-overridden-after", openDevMem() == "errno 126 (required key not available)", "the program answers in the patch's place: %s", openDevMem())
	r.expect("kmsg-silent", len(kmsgSince(seq)) == 0, "the kernel logs nothing: %q", kmsgSince(seq))
	r.checkListUsers("list-json-after", "security_locked_down", "bpf_fmod_ret", "overrides", p2)
	p2.Close()
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_lockdown")
	r.expect("devmem-unloaded", openDevMem() == "OK", "unpatched again: %s", openDevMem())

	// A kprobe with a post_handler first: preflight fails, the kernel
	// refuses the patch.
	res = insmod("klp_e2e_kprobe")
	r.must(r.expect("kprobe-post", res.code == 0, "kprobe with a post_handler on cmdline_proc_show: %v", res))
	ef, _ = readTrim(enabledFuncs)
	kl, _ := readTrim(kprobeList)
	r.note("enabled-functions-kprobe-post", "%q", ef)
	r.note("kprobes-list-post", "%q", kl)
	r.expect("kprobe-post-flags", strings.Contains(ef, "cmdline_proc_show (1) R I"), "a kprobe with a post_handler sets R and I: %q", ef)
	pre = klp("preflight", moduleFile("klp_e2e_cmdline"))
	r.noteText("preflight-kprobe", pre.stdout)
	r.expect("preflight-kprobe-fails", pre.code == 1 && strings.Contains(pre.stdout, "FAIL  Kprobes and other ftrace users: 1 function already has an ftrace user that modifies the instruction pointer"),
		"preflight fails: %v", pre)
	res = insmod("klp_e2e_cmdline")
	r.expect("insmod-ebusy", res.code != 0 && strings.Contains(res.stderr, "busy"), "the kernel refuses the patch (EBUSY): %v", res)
	rmmod("klp_e2e_kprobe")

	// Without a post_handler the kprobe coexists.
	res = insmod("klp_e2e_kprobe", "post=0")
	r.must(r.expect("kprobe-pre", res.code == 0, "kprobe without a post_handler: %v", res))
	ef, _ = readTrim(enabledFuncs)
	r.note("enabled-functions-kprobe-pre", "%q", ef)
	r.klpVerb("load-beside-kprobe", 0, []string{"patched"}, "load", moduleFile("klp_e2e_cmdline"))
	r.expect("cmdline-patched", procCmdline() == cmdlineMarker, "the patch runs: %q", procCmdline())
	r.checkListUsers("list-json-kprobe", "cmdline_proc_show", "kprobe", "coexists", nil)
	r.klpVerb("unload-beside-kprobe", 0, []string{"removed"}, "unload", "klp_e2e_cmdline")
}

// checkListUsers checks that klp list --json names the user of fn (the
// BPF program p, when not nil).
func (r *runner) checkListUsers(check, fn, kind, effect string, p *bpfProg) {
	res := klp("--json", "list")
	var doc struct {
		Functions []struct {
			Function   string `json:"function"`
			OtherUsers *[]struct {
				Kind      string  `json:"kind"`
				Effect    string  `json:"effect"`
				ProgramID *uint32 `json:"program_id"`
				LinkID    *uint32 `json:"link_id"`
			} `json:"other_users"`
		} `json:"functions"`
		Error *string `json:"other_users_error"`
	}
	err := decodeJSON(res.stdout, &doc, "functions", "other_users_error")
	ok := false
	for _, f := range doc.Functions {
		if f.Function != fn || f.OtherUsers == nil {
			continue
		}
		for _, u := range *f.OtherUsers {
			idOK := p == nil || u.ProgramID != nil && u.LinkID != nil && *u.ProgramID == uint32(p.progID) && *u.LinkID == uint32(p.linkID)
			ok = ok || u.Kind == kind && u.Effect == effect && idOK
		}
	}
	r.expect(check, res.code == 0 && err == nil && doc.Error == nil && ok, "list --json: %s has a %s user (%s); decode error %v; %v", fn, kind, effect, err, res)
}
