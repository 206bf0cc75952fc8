package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// Cause is why a task blocks a transition, as far as klp can tell.
type Cause string

// The causes, in the order they are looked for: the first that fits is
// the task's.
const (
	// CauseBPFTrampoline: a BPF trampoline (an fexit, fmod_ret or LSM
	// program, which calls the traced function) or a BPF program is on
	// the task's stack. The kernel cannot unwind through one (x86's ORC
	// unwinder learned to in December 2025, about Linux 6.19), so it
	// cannot check the task.
	CauseBPFTrampoline Cause = "bpf_trampoline"
	// CauseUnreliableStack: the kernel logged that it cannot unwind the
	// task's stack.
	CauseUnreliableStack Cause = "unreliable_stack"
	// CauseSignalledInVain: a user task that the kernel has signalled
	// (Linux 5.1+ sends a fake signal every 15 seconds) and that is still
	// unpatched: it does not return to user space.
	CauseSignalledInVain Cause = "signalled_in_vain"
	// CausePatchedCode: the task sleeps in code the transition changes.
	CausePatchedCode Cause = "patched_code_on_stack"
	// CauseKthreadNeverSleeps: a kernel thread that runs (state R)
	// rather than sleeps; whether cond_resched() switches it depends on
	// the kernel version only.
	CauseKthreadNeverSleeps Cause = "kthread_never_sleeps"
	// CauseKernelThread: another kernel thread.
	CauseKernelThread Cause = "kernel_thread"
	// CauseUninterruptible: a user task in uninterruptible sleep.
	CauseUninterruptible Cause = "uninterruptible_sleep"
	// CauseInit: PID 1.
	CauseInit Cause = "init"
	// CauseUserTask: a user task that has not returned to user space yet.
	CauseUserTask Cause = "user_task"
)

// Describe says the cause in a few words.
func (c Cause) Describe() string {
	switch c {
	case CauseBPFTrampoline:
		return "a BPF trampoline on its stack, which the kernel cannot unwind through"
	case CauseUnreliableStack:
		return "the kernel cannot unwind its stack reliably"
	case CauseSignalledInVain:
		return "signalled by the kernel in vain: it does not return to user space"
	case CausePatchedCode:
		return "sleeping in code the transition changes"
	case CauseKthreadNeverSleeps:
		return "a kernel thread that runs without sleeping"
	case CauseKernelThread:
		return "a kernel thread"
	case CauseUninterruptible:
		return "in uninterruptible sleep"
	case CauseInit:
		return "init (PID 1)"
	case CauseUserTask:
		return "a user task that has not returned to user space yet"
	}
	return string(c)
}

// Trampoline is a BPF trampoline or program on a task's stack, with what
// klp found about it.
type Trampoline struct {
	// Frame is the stack frame: "[<0>] bpf_trampoline_6442513548+0x2e/0x1000".
	Frame string
	// Symbol is the frame's function: bpf_trampoline_<key> or
	// bpf_prog_<tag>_<name>.
	Symbol string
	// Function is the function the trampoline traces (from
	// enabled_functions' direct--> lines or the BPF links); zero when
	// unknown.
	Function ftrace.Func
	// Programs are the BPF programs the trampoline runs (or the program
	// itself), from the bpf(2) system call; empty when they could not be
	// listed.
	Programs []kernel.BPFLink
}

// bpfFrame reports whether a stack frame runs BPF code: a trampoline or a
// program.
func bpfFrame(frame string) (string, bool) {
	fn := livepatch.StackFunction(frame)
	return fn, strings.HasPrefix(fn, "bpf_trampoline_") && len(fn) > len("bpf_trampoline_") || strings.HasPrefix(fn, "bpf_prog_")
}

// stallContext is what the diagnosis of every task of one transition
// shares.
type stallContext struct {
	tr          livepatch.Transition
	version     kernel.Version
	versionErr  error
	log         *livepatch.TransitionLog
	autoSignals bool
	waited      time.Duration
	// signalled: the kernel has sent its fake signal; why says how klp
	// knows.
	signalled bool
	why       string
	// bpf resolves trampolines; read once, when a stack shows one.
	bpfRead  bool
	direct   map[string]ftrace.Func // trampoline symbol -> traced function
	links    []kernel.BPFLink
	linksErr error
}

// signalPeriod is how often the kernel signals the blocking tasks (Linux
// 5.1+: SIGNALS_TIMEOUT, in once-a-second retries).
const signalPeriod = 15 * time.Second

// explainStall reads what the stall diagnosis needs besides the tasks:
// the kernel version, the kernel log of the transition, whether the
// kernel logs its reasons and signals by itself.
func (s *System) explainStall(r *BlockingReport, waited time.Duration) *stallContext {
	c := &stallContext{tr: *r.Transition, waited: waited}
	c.version, c.versionErr = s.K.Version()
	if p, err := s.LP.Patch(r.Transition.Patch); err == nil {
		// Linux 5.1 dropped the signal attribute when it started to
		// signal by itself; force came in 4.15.
		c.autoSignals = p.HasForce && !p.HasSignal
	}
	// The records read before an error count too; none parse to an
	// empty log, which says no more than no log.
	recs, err := s.Mod.KernelLog(func(rec kmod.KmsgRecord) bool { return strings.HasPrefix(rec.Message, "livepatch: ") })
	var b strings.Builder
	for _, rec := range recs {
		// One message per line: a message never holds a newline that
		// matters here.
		b.WriteString(strings.ReplaceAll(rec.Message, "\n", " "))
		b.WriteByte('\n')
	}
	if log, perr := livepatch.ParseTransitionLog(strings.NewReader(b.String()), r.Transition.Patch); perr == nil {
		c.log = &log
	}
	if err != nil {
		r.KernelLogErr = err
	}
	r.DynamicDebugControl = s.LP.DynamicDebugControl()
	found, enabled, derr := s.LP.SwitchReasonsLogged()
	switch {
	case derr != nil:
	case !found:
		r.KernelReasons = ReasonsUnavailable
	case enabled:
		r.KernelReasons = ReasonsLogged
	default:
		r.KernelReasons = ReasonsNotLogged
	}
	switch {
	case c.log != nil && c.log.Signalled:
		c.signalled, c.why = true, `the kernel logged "signaling remaining tasks"`
	case c.autoSignals && waited > signalPeriod+time.Second:
		c.signalled, c.why = true, fmt.Sprintf("the transition ran for more than %s on a kernel that signals the blocking tasks every 15 seconds", waited.Round(time.Second))
	}
	if c.signalled {
		r.Signalled = &c.signalled
	} else if c.log != nil && c.log.Started {
		// The log holds the whole transition and no signal yet.
		r.Signalled = &c.signalled
	}
	return c
}

// readBPF reads, once, what names the BPF trampolines on the stacks.
func (s *System) readBPF(c *stallContext) {
	if c.bpfRead {
		return
	}
	c.bpfRead = true
	c.direct = map[string]ftrace.Func{}
	ft := ftrace.New(s.K)
	if entries, err := ft.EnabledFunctions(context.Background(), nil); err == nil {
		for _, e := range entries {
			if e.Direct != "" {
				c.direct[livepatch.StackFunction(e.Direct)] = e.Func
			}
		}
	}
	c.links, c.linksErr = ft.BPFLinks()
}

// diagnose sets t's cause, evidence and advice.
func (s *System) diagnose(t *BlockingTask, c *stallContext) {
	if c.log != nil {
		if kr, ok := c.log.Reasons[t.TID]; ok {
			t.KernelReason = &kr
			t.Evidence = append(t.Evidence, "kernel log: "+kr.Message)
		}
	}
	for _, f := range t.Stack {
		sym, ok := bpfFrame(f)
		if !ok {
			continue
		}
		s.readBPF(c)
		tp := Trampoline{Frame: f, Symbol: sym, Function: c.direct[sym]}
		for _, l := range c.links {
			// A trampoline is named by its key, a program
			// bpf_prog_<tag>_<name>.
			if l.Trampoline != "" && l.Trampoline == sym || strings.HasPrefix(sym, "bpf_prog_") && l.Program != "" && strings.HasSuffix(sym, "_"+l.Program) {
				tp.Programs = append(tp.Programs, l)
				if tp.Function.Name == "" && l.Function != "" {
					tp.Function = ftrace.Func{Object: l.Object, Name: l.Function}
				}
			}
		}
		t.Trampolines = append(t.Trampolines, tp)
		t.Evidence = append(t.Evidence, "stack: "+strings.TrimSpace(f)+trampolineNote(tp))
	}
	reason := ""
	if t.KernelReason != nil {
		reason = t.KernelReason.Reason
	}
	// A trampoline on the stack makes it unreliable on the kernels that
	// cannot unwind through one; on a later kernel only the kernel's own
	// word counts.
	trampolineBlocks := len(t.Trampolines) > 0 && (reason == livepatch.ReasonUnreliableStack || c.versionErr != nil || !c.version.AtLeast(6, 19))
	switch {
	case trampolineBlocks:
		t.Cause = CauseBPFTrampoline
	case reason == livepatch.ReasonUnreliableStack:
		t.Cause = CauseUnreliableStack
	case !t.KernelThread && c.signalled:
		t.Cause = CauseSignalledInVain
		t.Evidence = append(t.Evidence, "signalled: "+c.why)
	case len(t.Culprits) > 0 || reason == livepatch.ReasonSleepingOnFunction:
		t.Cause = CausePatchedCode
	case t.KernelThread && (t.State == "R" || reason == livepatch.ReasonRunning):
		t.Cause = CauseKthreadNeverSleeps
		t.Evidence = append(t.Evidence, "state "+t.State)
		t.Evidence = append(t.Evidence, versionEvidence(c))
	case t.KernelThread:
		t.Cause = CauseKernelThread
	case t.State == "D":
		t.Cause = CauseUninterruptible
	case t.PID == 1:
		t.Cause = CauseInit
	default:
		t.Cause = CauseUserTask
	}
	t.Advice = advice(*t, c)
}

// trampolineNote names what a BPF frame runs, when known.
func trampolineNote(tp Trampoline) string {
	var parts []string
	if tp.Function.Name != "" {
		parts = append(parts, "traces "+tp.Function.String())
	}
	for _, p := range tp.Programs {
		kind, _ := ftrace.ClassifyBPF(p)
		parts = append(parts, ftrace.User{Kind: kind, Program: p.Program, ProgramID: p.ProgramID, LinkID: p.ID}.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// versionEvidence says which rule for kernel threads the version gives.
func versionEvidence(c *stallContext) string {
	if c.versionErr != nil {
		return "the kernel version could not be read (" + c.versionErr.Error() + "), and only the version tells how kernel threads switch"
	}
	return fmt.Sprintf("from the kernel version (%s): no file tells how kernel threads switch", c.version)
}

// advice says what the administrator can do about one blocking task.
func advice(t BlockingTask, c *stallContext) string {
	// rev and force are the ways out that name the patch: SLE 12's kGraft
	// does not name the patch in transition, so no command can be given
	// there, nor a force.
	tr := c.tr
	rev, force, forceNeverSleeps := "", "", ""
	if tr.Patch != "" {
		cmd := "klp disable " + tr.Patch
		if tr.Target == livepatch.StateUnpatched {
			cmd = "klp enable " + tr.Patch
		}
		rev = fmt.Sprintf("reverse the transition (%s)", cmd)
		force = fmt.Sprintf("as a last resort force it (klp force %s)", tr.Patch)
		forceNeverSleeps = fmt.Sprintf("if it never sleeps, force it (klp force %s) as a last resort", tr.Patch)
	}
	switch t.Cause {
	case CauseBPFTrampoline:
		what := "the BPF program"
		var fns []string
		for _, tp := range t.Trampolines {
			if tp.Function.Name != "" {
				fns = append(fns, tp.Function.String())
			}
		}
		if len(fns) > 0 {
			what += " on " + strings.Join(dedupStrings(fns), ", ")
		}
		return fmt.Sprintf("detach %s (bpftool link lists the programs; an fexit, fmod_ret or LSM program's trampoline stays on the stack while the traced function runs), and the task switches at the kernel's next check; or %s", what, either("wait until it leaves that function", rev, force))
	case CauseUnreliableStack:
		if t.KernelThread {
			return "the kernel cannot check this kernel thread until its stack can be unwound again: " + either("wait", rev, force)
		}
		return "a user task switches when it returns to user space whatever its stack: kgr poke (SIGSTOP and SIGCONT) makes it" + prefixed("; else ", rev)
	case CauseSignalledInVain:
		why := "it stays in the kernel"
		switch {
		case t.State == "D":
			why = "it sleeps uninterruptibly (state D), which no signal interrupts"
		case len(t.Culprits) > 0:
			why = "it stays in " + strings.Join(t.CulpritFunctions(), ", ")
		case t.State == "R":
			why = "it runs in the kernel without returning to user space"
		}
		return fmt.Sprintf("the kernel has signalled the blocking tasks and this one still does not return to user space: %s; kgr poke wakes a task no better than the kernel's signal, so it is unlikely to help; %s", why, either("wait for it to leave the kernel (its I/O, its lock)", rev, force))
	case CauseKthreadNeverSleeps:
		return kthreadAdvice(c, either("wait", rev, forceNeverSleeps))
	case CausePatchedCode:
		if t.KernelThread {
			return "a kernel thread sleeping in code the patch changes: signals cannot move it; " + either("wait for it to leave that function", rev, force)
		}
		if t.State == "D" {
			return "in uninterruptible sleep: a signal cannot wake it; " + either("wait for its I/O", rev)
		}
		if t.PID == 1 {
			return initAdvice(rev)
		}
		return "sleeping in code the patch changes: send it SIGSTOP and SIGCONT (kgr poke) so that it leaves the kernel" + prefixed("; if it always returns there, ", rev)
	case CauseKernelThread:
		return "a kernel thread: signals cannot move it; " + either("wait", rev)
	case CauseUninterruptible:
		return "in uninterruptible sleep: a signal cannot wake it; " + either("wait for its I/O", rev)
	case CauseInit:
		return initAdvice(rev)
	}
	if c.autoSignals {
		return "a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and the kernel signals it every 15 seconds"
	}
	return "a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and Linux 5.1+ signals it every 15 seconds"
}

// initAdvice is the advice for init. Stopping init stops the machine's
// service manager: never advise it.
func initAdvice(rev string) string {
	return "init (PID 1): it switches on its next exit from the kernel; never stop it, wait" + prefixed(" or ", rev)
}

// either lists the ways given, skipping the empty ones: "a", "a, or b",
// "a, b, or c".
func either(ways ...string) string {
	var ws []string
	for _, w := range ways {
		if w != "" {
			ws = append(ws, w)
		}
	}
	if len(ws) < 2 {
		return strings.Join(ws, "")
	}
	return strings.Join(ws[:len(ws)-1], ", ") + ", or " + ws[len(ws)-1]
}

// prefixed is prefix+s, or nothing when s is empty.
func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// kthreadAdvice is the advice for a kernel thread that does not sleep:
// how it switches changed twice, and only the version tells which rule a
// kernel follows. tail is what to do.
func kthreadAdvice(c *stallContext, tail string) string {
	v := c.version
	switch {
	case c.versionErr != nil:
		return "it switches when the kernel's once-a-second check finds it off the CPU; Linux 6.4 to 6.15 also switch it in cond_resched(), Linux 6.16+ only when it sleeps with TASK_FREEZABLE (the kernel version could not be read, and no file tells): " + tail
	case v.AtLeast(6, 16):
		return fmt.Sprintf("since Linux 6.16 cond_resched() no longer switches a kernel thread: it switches only when it sleeps with TASK_FREEZABLE, or when the kernel's once-a-second check finds it off the CPU (from the kernel version, %s: no file tells); %s", v, tail)
	case v.AtLeast(6, 4):
		return fmt.Sprintf("on this kernel its next cond_resched() switches it (Linux 6.4 to 6.15; from the kernel version, %s: no file tells), so it should switch soon; if it stays, it never calls cond_resched(): %s", v, tail)
	}
	return fmt.Sprintf("before Linux 6.4 a running kernel thread switches only when the kernel's once-a-second check finds it off the CPU (from the kernel version, %s: no file tells); %s", v, tail)
}

func dedupStrings(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// KernelReasons says whether the kernel logs why it cannot switch each
// task (klp_try_switch_task's debug messages).
type KernelReasons string

const (
	// ReasonsUnknown: <debugfs>/dynamic_debug/control could not be read.
	ReasonsUnknown KernelReasons = ""
	// ReasonsLogged: the messages are on; the tasks' KernelReason holds
	// them.
	ReasonsLogged KernelReasons = "logged"
	// ReasonsNotLogged: the kernel has the messages, off (the default):
	// [livepatch.SwitchReasonsControl] turns them on.
	ReasonsNotLogged KernelReasons = "not_logged"
	// ReasonsUnavailable: the kernel has no such messages (no dynamic
	// debug).
	ReasonsUnavailable KernelReasons = "unavailable"
)
