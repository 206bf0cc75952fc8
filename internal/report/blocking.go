package report

import (
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// Blocking is `klp blocking --json` (and kgr blocking, blocking_threads).
type Blocking struct {
	SchemaVersion int         `json:"schema_version"`
	Interface     string      `json:"interface"`
	Transition    *Transition `json:"transition"`
	Tasks         []Task      `json:"tasks"`
	Unreadable    []TaskError `json:"unreadable"`
	TasksScanned  int         `json:"tasks_scanned"`
}

// Task is a blocking task.
type Task struct {
	PID          int      `json:"pid"`
	TID          int      `json:"tid"`
	Comm         string   `json:"comm"`
	Cmdline      string   `json:"cmdline"`
	KernelThread bool     `json:"kernel_thread"`
	State        string   `json:"state"`
	PatchState   int      `json:"patch_state"`
	Stack        []string `json:"stack"`
	StackError   *string  `json:"stack_error"`
}

// TaskError is a task whose state could not be read.
type TaskError struct {
	PID   int    `json:"pid"`
	TID   int    `json:"tid"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

func task(t admin.BlockingTask) Task {
	jt := Task{
		PID: t.PID, TID: t.TID, Comm: t.Comm, Cmdline: t.Cmdline, KernelThread: t.KernelThread,
		State: t.State, PatchState: int(t.PatchState), Stack: t.Stack,
	}
	if t.StackErr != nil {
		jt.StackError = ptr(t.StackErr.Error())
	}
	return jt
}

func taskErrors(errs []livepatch.TaskError) []TaskError {
	out := []TaskError{}
	for _, u := range errs {
		out = append(out, TaskError{PID: u.PID, TID: u.TID, Path: u.Path, Error: errText(u.Err)})
	}
	return out
}

// NewBlocking builds the blocking document.
func NewBlocking(r *admin.BlockingReport) Blocking {
	doc := Blocking{
		SchemaVersion: Version,
		Interface:     string(r.Interface),
		Transition:    transition(r.Transition),
		Tasks:         []Task{},
		Unreadable:    taskErrors(r.Unreadable),
		TasksScanned:  r.Scanned,
	}
	for _, t := range r.Tasks {
		doc.Tasks = append(doc.Tasks, task(t))
	}
	return doc
}

// Stall explains why a transition does not complete.
type Stall struct {
	Patch      *string       `json:"patch"` // null on kGraft, which does not name it
	Target     string        `json:"target"`
	Functions  []string      `json:"functions"`
	Tasks      []StalledTask `json:"tasks"`
	Unreadable []TaskError   `json:"unreadable"`
	// KernelSignalled: the kernel has sent its fake signal in this
	// transition (null: unknown).
	KernelSignalled *bool `json:"kernel_signalled"`
	// KernelReasons: "logged", "not_logged", "unavailable", or null
	// when the dynamic debug control could not be read.
	KernelReasons *string `json:"kernel_reasons"`
	// KernelLogError: why the kernel log could not be read.
	KernelLogError *string `json:"kernel_log_error"`
}

// StalledTask is a blocking task with what holds it back and what to do.
type StalledTask struct {
	Task
	Culprits     []string   `json:"culprits"`
	Cause        string     `json:"cause"`
	Evidence     []string   `json:"evidence"`
	KernelReason *string    `json:"kernel_reason"`
	BPFFrames    []BPFFrame `json:"bpf_frames"`
	Advice       string     `json:"advice"`
}

// BPFFrame is a BPF trampoline or program on a task's stack.
type BPFFrame struct {
	Frame    string       `json:"frame"`
	Symbol   string       `json:"symbol"`
	Object   *string      `json:"object"`
	Function *string      `json:"function"`
	Programs []BPFProgram `json:"programs"`
}

// BPFProgram is a BPF program attached to a kernel function.
type BPFProgram struct {
	Name      string  `json:"name"`
	ProgramID uint32  `json:"program_id"`
	LinkID    uint32  `json:"link_id"`
	Attach    string  `json:"attach"`
	Object    *string `json:"object"`
	Function  *string `json:"function"`
}

func bpfProgram(l kernel.BPFLink) BPFProgram {
	return BPFProgram{Name: l.Program, ProgramID: l.ProgramID, LinkID: l.ID, Attach: l.Attach,
		Object: optString(l.Object), Function: optString(l.Function)}
}

func stalledTask(t admin.BlockingTask) StalledTask {
	st := StalledTask{Task: task(t), Culprits: nonNil(t.Culprits), Cause: string(t.Cause),
		Evidence: nonNil(t.Evidence), BPFFrames: []BPFFrame{}, Advice: t.Advice}
	if t.KernelReason != nil {
		st.KernelReason = ptr(t.KernelReason.Message)
	}
	for _, tp := range t.Trampolines {
		f := BPFFrame{Frame: tp.Frame, Symbol: tp.Symbol, Programs: []BPFProgram{}}
		if tp.Function.Name != "" {
			f.Object, f.Function = ptr(tp.Function.Object), ptr(tp.Function.Name)
		}
		for _, p := range tp.Programs {
			f.Programs = append(f.Programs, bpfProgram(p))
		}
		st.BPFFrames = append(st.BPFFrames, f)
	}
	return st
}

// NewStall builds the stall object of a report made with Explain, or nil.
func NewStall(r *admin.BlockingReport) *Stall {
	if r == nil || r.Transition == nil {
		return nil
	}
	s := &Stall{
		Patch: transition(r.Transition).Patch, Target: r.Transition.Target.String(),
		Functions: nonNil(r.Functions), Tasks: []StalledTask{}, Unreadable: taskErrors(r.Unreadable),
		KernelSignalled: r.Signalled, KernelReasons: optString(string(r.KernelReasons)), KernelLogError: errString(r.KernelLogErr),
	}
	for _, t := range r.Tasks {
		s.Tasks = append(s.Tasks, stalledTask(t))
	}
	return s
}

// Why is `klp blocking --why --json`.
type Why struct {
	SchemaVersion int    `json:"schema_version"`
	Stall         *Stall `json:"stall"`
}

// NewWhy builds the blocking --why document.
func NewWhy(r *admin.BlockingReport) Why {
	return Why{SchemaVersion: Version, Stall: NewStall(r)}
}

// Poke is `kgr poke --json`.
type Poke struct {
	SchemaVersion int `json:"schema_version"`
	// DryRun: nothing was signalled; Poked lists what would have been.
	DryRun  bool      `json:"dry_run"`
	Poked   []PokePID `json:"poked"`
	Skipped []PokePID `json:"skipped"`
	Failed  []PokePID `json:"failed"`
}

// PokePID is one process of a poke.
type PokePID struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Reason string `json:"reason,omitempty"`
}

// NewPoke builds the poke document of a plan that ran, or with dryRun of
// one that did not.
func NewPoke(plan *admin.PokePlan, dryRun bool) Poke {
	doc := Poke{SchemaVersion: Version, DryRun: dryRun, Poked: []PokePID{}, Skipped: []PokePID{}, Failed: []PokePID{}}
	for _, t := range plan.Targets {
		switch {
		case t.Skip != "":
			doc.Skipped = append(doc.Skipped, PokePID{PID: t.PID, Comm: t.Comm, Reason: t.Skip})
		case t.Err == admin.ErrPokeExited:
			// It exited: it no longer blocks.
		case t.Err != nil:
			doc.Failed = append(doc.Failed, PokePID{PID: t.PID, Comm: t.Comm, Reason: t.Err.Error()})
		default:
			doc.Poked = append(doc.Poked, PokePID{PID: t.PID, Comm: t.Comm})
		}
	}
	return doc
}
