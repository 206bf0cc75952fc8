package report

import (
	"github.com/klp-project/klp/internal/admin"
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
}

// StalledTask is a blocking task with what holds it back and what to do.
type StalledTask struct {
	Task
	Culprits []string `json:"culprits"`
	Advice   string   `json:"advice"`
}

// NewStall builds the stall object of a report made with Explain, or nil.
func NewStall(r *admin.BlockingReport) *Stall {
	if r == nil || r.Transition == nil {
		return nil
	}
	s := &Stall{
		Patch: transition(r.Transition).Patch, Target: r.Transition.Target.String(),
		Functions: nonNil(r.Functions), Tasks: []StalledTask{}, Unreadable: taskErrors(r.Unreadable),
	}
	for _, t := range r.Tasks {
		s.Tasks = append(s.Tasks, StalledTask{Task: task(t), Culprits: nonNil(t.Culprits), Advice: t.Advice(*r.Transition)})
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
