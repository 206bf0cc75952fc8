package livepatch

import (
	"sort"
	"sync"
)

// Transition describes the transition in progress.
type Transition struct {
	// Patch is the name of the patch in transition.
	Patch string
	// Target is the state tasks are moving to: [StatePatched] while
	// patching, [StateUnpatched] while unpatching. It is the patch's enabled
	// value, which a reverse flips, so read it again on every poll.
	Target PatchState
}

// Direction returns "patching" or "unpatching".
func (t Transition) Direction() string {
	if t.Target == StatePatched {
		return "patching"
	}
	return "unpatching"
}

// TransitionOf returns the transition of the given patch list, or nil.
func TransitionOf(patches []Patch) *Transition {
	for _, p := range patches {
		if p.InTransition() {
			t := Transition{Patch: p.Name, Target: StateUnpatched}
			if p.Enabled {
				t.Target = StatePatched
			}
			return &t
		}
	}
	return nil
}

// Blocking is the result of a search for the tasks that block a transition.
type Blocking struct {
	// Transition is the transition in progress, nil when none is; then
	// nothing blocks and no task was scanned.
	Transition *Transition
	// Tasks are the blocking tasks, sorted by PID and TID.
	Tasks []TaskState
	// Stats tells how many tasks were read, and which could not be.
	Stats ScanStats
}

// BlockingTasks finds the tasks that have not yet switched to the target
// state of the transition in progress, exactly as the kernel counts them: a
// task blocks when its patch_state is 0 or 1 and differs from the
// transitioning patch's enabled value. -1 means the task has not been set up
// yet or the transition just finished, so it does not block. With no
// transition, nothing blocks and no task is read.
//
// Per-thread files are read, because /proc/<pid>/patch_state shows only the
// thread-group leader. The per-CPU idle tasks can block too but have no
// /proc entry; the kernel retries them by itself.
func (fs FS) BlockingTasks(patches []Patch) (Blocking, error) {
	tr := TransitionOf(patches)
	if tr == nil {
		return Blocking{}, nil
	}
	return fs.blockingFor(tr, ScanOptions{}, func(v PatchState) bool {
		return v >= 0 && v != tr.Target
	})
}

func (fs FS) blockingFor(tr *Transition, opts ScanOptions, blocks func(PatchState) bool) (Blocking, error) {
	b := Blocking{Transition: tr}
	var mu sync.Mutex
	stats, err := fs.ScanTasks(opts, func(t TaskState) {
		if blocks(t.State) {
			mu.Lock()
			b.Tasks = append(b.Tasks, t)
			mu.Unlock()
		}
	})
	b.Stats = stats
	sort.Slice(b.Tasks, func(i, j int) bool {
		x, y := b.Tasks[i], b.Tasks[j]
		return x.PID < y.PID || x.PID == y.PID && x.TID < y.TID
	})
	return b, err
}
