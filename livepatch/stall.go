package livepatch

import (
	"errors"
	"os"
	"strings"
)

// StalledTask is a task that blocks a transition, with the evidence.
type StalledTask struct {
	Task
	// PatchState is the task's patch_state.
	PatchState PatchState
	// Stack is the task's kernel stack; nil when it could not be read
	// (StackErr says why: stacks need root).
	Stack    []string
	StackErr error
	// Culprits are the frames of Stack that run code the transition
	// changes: a function the patch replaces (patching keeps the old code
	// on the stack) or code of a live patch module (unpatching keeps the
	// new code, and a stacked patch's code counts too). The kernel's stack
	// check refuses to switch a task for exactly these frames.
	Culprits []string
}

// StallReport explains why a transition does not complete.
type StallReport struct {
	Transition Transition
	// Functions are the patched functions of the patch in transition.
	Functions []string
	Tasks     []StalledTask
	Stats     ScanStats
}

// ExplainStall finds the tasks that block the transition of patches (as
// [FS.BlockingTasks] does), reads their stacks, and names the frames that
// hold them back. It returns nil when nothing is in transition.
func (fs FS) ExplainStall(patches []Patch) (*StallReport, error) {
	b, err := fs.BlockingTasks(patches)
	if err != nil || b.Transition == nil {
		return nil, err
	}
	r := &StallReport{Transition: *b.Transition, Stats: b.Stats}
	funcs := map[string]bool{}
	modules := map[string]bool{}
	for _, p := range patches {
		modules[p.Name] = true
		if p.Name != b.Transition.Patch {
			continue
		}
		for _, o := range p.Objects {
			for _, f := range o.Functions {
				if !funcs[f.Name] {
					funcs[f.Name] = true
					r.Functions = append(r.Functions, f.Name)
				}
			}
		}
	}
	for _, ts := range b.Tasks {
		t, err := fs.Task(ts.PID, ts.TID)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st := StalledTask{Task: t, PatchState: ts.State}
		st.Stack, st.StackErr = fs.TaskStack(ts.PID, ts.TID)
		for _, frame := range st.Stack {
			if funcs[StackFunction(frame)] || modules[frameModule(frame)] {
				st.Culprits = append(st.Culprits, frame)
			}
		}
		r.Tasks = append(r.Tasks, st)
	}
	return r, nil
}

// frameModule returns the module of a stack frame: "[<0>] f+0x1/0x2 [mod]"
// gives "mod"; vmlinux frames give "".
func frameModule(frame string) string {
	frame = strings.TrimSpace(frame)
	if !strings.HasSuffix(frame, "]") {
		return ""
	}
	i := strings.LastIndex(frame, " [")
	if i < 0 {
		return ""
	}
	return frame[i+2 : len(frame)-1]
}
