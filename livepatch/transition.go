package livepatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
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

// Transition returns the transition in progress, or nil, reading only each
// patch's transition attribute and, for the one in transition, its enabled
// attribute: what status and check need, so that garbage in an attribute
// they do not need (an object directory, replace, stack_order) cannot make
// them fail. On a kernel without live patching it returns
// [ErrNotSupported].
func (fs FS) Transition() (*Transition, error) {
	dir, names, err := fs.patchDirs()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		pdir := filepath.Join(dir, name)
		inTransition, err := fs.k.ReadBool(filepath.Join(pdir, "transition"))
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, unix.ENODEV):
			// Gone meanwhile, or a kernel before 4.12 (no
			// transition: changes are immediate).
			continue
		case err != nil:
			return nil, fmt.Errorf("read patch %s: %w", name, err)
		case !inTransition:
			continue
		}
		enabled, err := fs.k.ReadBool(filepath.Join(pdir, "enabled"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
				continue
			}
			return nil, fmt.Errorf("read patch %s: %w", name, err)
		}
		t := &Transition{Patch: name, Target: StateUnpatched}
		if enabled {
			t.Target = StatePatched
		}
		return t, nil
	}
	return nil, nil
}

// Blocking finds the tasks that block the transition in progress, as
// [FS.BlockingTasks] does, reading of the patches only what
// [FS.Transition] reads.
func (fs FS) Blocking() (Blocking, error) {
	tr, err := fs.Transition()
	if err != nil || tr == nil {
		return Blocking{}, err
	}
	return fs.blockingFor(tr, ScanOptions{}, func(v PatchState) bool {
		return v >= 0 && v != tr.Target
	})
}

// CountBlocking counts the tasks that block a transition to target, as
// [FS.Blocking] finds them, keeping nothing per task: what a progress line
// shows. opts may pace the scan and stop it (a count that the wait no
// longer needs). Tasks that could not be read are in the stats, not in the
// count.
func (fs FS) CountBlocking(target PatchState, opts ScanOptions) (int, ScanStats, error) {
	var n atomic.Int64
	stats, err := fs.ScanTasks(opts, func(t TaskState) {
		if t.State >= 0 && t.State != target {
			n.Add(1)
		}
	})
	return int(n.Load()), stats, err
}
