package admin

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/klp-project/klp/livepatch"
)

// BlockingMode says what a blocking report lists.
type BlockingMode int

const (
	// Threads lists threads: klp blocking, and kgr on upstream kernels.
	Threads BlockingMode = iota
	// KGraftProcesses lists processes: SLE 12's kgr blocking, whose
	// kgr_in_progress flag is per process.
	KGraftProcesses
	// KGraftThreads lists the PID and TID of each thread: SLE 12's kgr
	// blocking_threads.
	KGraftThreads
)

// BlockingOptions select what a blocking report reads.
type BlockingOptions struct {
	Mode BlockingMode
	// Stacks reads each blocking task's kernel stack (-vv; needs root).
	Stacks bool
	// Explain names, on each task's stack, the frames that hold it back,
	// and the functions the transition changes (blocking --why and the
	// stall report of load and wait). It implies Stacks.
	Explain bool
	// Waited is how long the caller has watched the transition (load
	// and wait): past 15 seconds a kernel that signals by itself has
	// signalled. Zero when unknown (blocking --why).
	Waited time.Duration
}

// BlockingReport is the tasks that hold up the transition in progress, with
// what is known about each. It is the one answer behind blocking, blocking
// --why, poke, and the stall report of load and wait.
type BlockingReport struct {
	Interface livepatch.Interface
	// Mode is what was listed: [Threads] unless the kernel has the kGraft
	// interface.
	Mode BlockingMode
	// Transition is the transition in progress, nil when none is (then
	// no task was scanned).
	Transition *livepatch.Transition
	// Functions are the functions the transition changes (with Explain).
	Functions []string
	// Tasks are the blocking tasks, by PID and TID.
	Tasks []BlockingTask
	// Scanned is how many task files were read.
	Scanned int
	// Unreadable are the tasks whose state or details could not be read:
	// other users' tasks when not root, or a garbled file. The list of
	// blocking tasks is then incomplete.
	Unreadable []livepatch.TaskError
	// StackErr is the first stack read error that is the caller's fault
	// (permission), with Stacks.
	StackErr error

	// With Explain:

	// Signalled is true when the kernel has sent its fake signal to the
	// blocking user tasks during this transition, false when the kernel
	// log shows the whole transition and no signal yet; nil when unknown.
	Signalled *bool
	// KernelReasons says whether the kernel logs why it cannot switch
	// each task.
	KernelReasons KernelReasons
	// KernelLogErr is why the kernel log could not be read (then no
	// task has a KernelReason).
	KernelLogErr error
	// DynamicDebugControl is where the kernel's reasons are turned on
	// (<debugfs>/dynamic_debug/control).
	DynamicDebugControl string
}

// BlockingTask is one blocking task, with the evidence.
type BlockingTask struct {
	livepatch.Task
	// PatchState is the state read (0 unpatched, 1 patched; kGraft's flag).
	PatchState livepatch.PatchState
	// Stack is the task's kernel stack, nil unless asked for or when it
	// could not be read (StackErr says why).
	Stack    []string
	StackErr error
	// Culprits are the frames of Stack that run code the transition
	// changes: a function the patch replaces (patching keeps the old code
	// on the stack) or code of a live patch module (unpatching keeps the
	// new code, and a stacked patch's code counts too). The kernel's stack
	// check refuses to switch a task for exactly these frames.
	Culprits []string

	// With Explain:

	// Cause is why it blocks, as far as klp can tell.
	Cause Cause
	// Evidence are what shows the cause, one line each: the kernel's
	// log line, a stack frame, how klp knows the kernel signalled, the
	// kernel version a rule comes from.
	Evidence []string
	// KernelReason is the kernel's last logged reason for not switching
	// it, nil when none was logged (see BlockingReport.KernelReasons).
	KernelReason *livepatch.SwitchReason
	// Trampolines are the BPF trampolines and programs on its stack.
	Trampolines []Trampoline
	// Advice says what the administrator can do.
	Advice string
}

// Blocking finds the tasks that block the transition in progress.
func (s *System) Blocking(opts BlockingOptions) (*BlockingReport, error) {
	if opts.Explain {
		opts.Stacks = true
	}
	r := &BlockingReport{Interface: s.iface, Mode: opts.Mode}
	if s.iface != livepatch.InterfaceKGraft {
		r.Mode = Threads
	}
	b, err := s.backend.blocking(r.Mode == KGraftProcesses)
	if err != nil {
		return nil, err
	}
	r.Transition, r.Scanned, r.Unreadable = b.Transition, b.Stats.Tasks, b.Stats.Unreadable
	var funcs, modules map[string]bool
	var sc *stallContext
	if opts.Explain && r.Transition != nil {
		if s.iface == livepatch.InterfaceLivepatch {
			sc = s.explainStall(r, opts.Waited)
		} else {
			sc = &stallContext{tr: *r.Transition}
			sc.version, sc.versionErr = s.K.Version()
		}
		fl, mods, err := s.backend.changedFunctions(r.Transition)
		if err != nil {
			return nil, err
		}
		r.Functions, modules = fl, mods
		funcs = map[string]bool{}
		for _, f := range fl {
			funcs[f] = true
		}
	}
	for _, ts := range b.Tasks {
		t, err := s.LP.Task(ts.PID, ts.TID)
		if errors.Is(err, os.ErrNotExist) {
			continue // it exited, so it no longer blocks
		}
		if err != nil {
			// One garbled or unreadable task must not hide the others:
			// it is reported, and makes the answer incomplete.
			r.Unreadable = append(r.Unreadable, livepatch.TaskError{PID: ts.PID, TID: ts.TID,
				Path: s.LP.ProcPath(fmt.Sprint(ts.PID), "task", fmt.Sprint(ts.TID)), Err: err})
			continue
		}
		bt := BlockingTask{Task: t, PatchState: ts.State}
		if opts.Stacks {
			bt.Stack, bt.StackErr = s.LP.TaskStack(ts.PID, ts.TID)
			if bt.StackErr != nil && r.StackErr == nil && !errors.Is(bt.StackErr, livepatch.ErrStackUnavailable) && !errors.Is(bt.StackErr, os.ErrNotExist) {
				r.StackErr = bt.StackErr
			}
		}
		for _, frame := range bt.Stack {
			if funcs[livepatch.StackFunction(frame)] || modules[livepatch.FrameModule(frame)] {
				bt.Culprits = append(bt.Culprits, frame)
			}
		}
		if sc != nil {
			s.diagnose(&bt, sc)
		}
		r.Tasks = append(r.Tasks, bt)
	}
	return r, nil
}

// Complete reports whether every task could be read: a list that silently
// lacks other users' tasks would tell a script that nothing blocks.
func (r *BlockingReport) Complete() bool { return len(r.Unreadable) == 0 }

// ErrIncomplete reports a blocking report that could not read every task
// (or, with stacks, every stack).
var ErrIncomplete = errors.New("incomplete answer")

// IncompleteError says what a blocking report could not read and what to
// do; it is [ErrIncomplete].
type IncompleteError struct{ msg string }

func (e *IncompleteError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrIncomplete) hold.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

// Incomplete returns an [*IncompleteError], or nil when everything was read.
func (r *BlockingReport) Incomplete() error {
	if un := r.Unreadable; len(un) > 0 {
		hint := ""
		if errors.Is(un[0].Err, os.ErrPermission) {
			hint = "; run as root to see every blocking task"
		}
		return &IncompleteError{fmt.Sprintf("could not read the state of %d task(s) (%v)%s", len(un), un[0], hint)}
	}
	if r.StackErr != nil {
		hint := ""
		if errors.Is(r.StackErr, os.ErrPermission) {
			hint = "; stack traces need root (CAP_SYS_ADMIN)"
		}
		return &IncompleteError{fmt.Sprintf("cannot read stack traces: %v%s", r.StackErr, hint)}
	}
	return nil
}

// CulpritFunctions returns the function names of the culprit frames.
func (t BlockingTask) CulpritFunctions() []string {
	names := make([]string, 0, len(t.Culprits))
	for _, c := range t.Culprits {
		names = append(names, livepatch.StackFunction(c))
	}
	return names
}

// Count is the number of blocking tasks, or -1 when some could not be read
// (the transition's progress line then says "counting tasks").
func (r *BlockingReport) Count() int {
	if !r.Complete() {
		return -1
	}
	return len(r.Tasks)
}
