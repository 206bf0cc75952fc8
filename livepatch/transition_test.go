package livepatch

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTransitionOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		patches []Patch
		want    *Transition
	}{
		{"no patches", nil, nil},
		{"steady", []Patch{{Name: "a", Enabled: true, Transition: ptr(false)}}, nil},
		{"before 4.12", []Patch{{Name: "a", Enabled: true}}, nil},
		{"patching", []Patch{
			{Name: "a", Enabled: true, Transition: ptr(false)},
			{Name: "b", Enabled: true, Transition: ptr(true)},
		}, &Transition{Patch: "b", Target: StatePatched}},
		{"unpatching", []Patch{
			{Name: "a", Enabled: false, Transition: ptr(true)},
			{Name: "b", Enabled: true, Transition: ptr(false)},
		}, &Transition{Patch: "a", Target: StateUnpatched}},
		{"disabled, not in transition (before 5.1)", []Patch{
			{Name: "a", Enabled: false, Transition: ptr(false)},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, TransitionOf(tc.patches)); diff != "" {
				t.Errorf("TransitionOf(): unexpected diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDirection(t *testing.T) {
	t.Parallel()
	if got := (Transition{Target: StatePatched}).Direction(); got != "patching" {
		t.Errorf("Direction() = %q, want patching", got)
	}
	if got := (Transition{Target: StateUnpatched}).Direction(); got != "unpatching" {
		t.Errorf("Direction() = %q, want unpatching", got)
	}
}

func TestPatchStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[PatchState]string{
		StateIdle: "idle", StateUnpatched: "unpatched", StatePatched: "patched", 2: "PatchState(2)", -7: "PatchState(-7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("PatchState(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestBlockingTasksFixtures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fixture string
		want    Blocking
	}{
		{"transition-blocking", Blocking{
			Transition: &Transition{Patch: "livepatch_2_160000_1_1", Target: StatePatched},
			// Tasks at 0 block; 1 has switched; -1 (sleep, 2311) never blocks.
			Tasks: []TaskState{
				{PID: 812, TID: 846, State: StateUnpatched},
				{PID: 1204, TID: 1204, State: StateUnpatched},
				{PID: 1205, TID: 1205, State: StateUnpatched},
				{PID: 2050, TID: 2050, State: StateUnpatched},
				{PID: 2210, TID: 2210, State: StateUnpatched},
			},
			Stats: ScanStats{Tasks: 16},
		}},
		{"transition-unpatching", Blocking{
			Transition: &Transition{Patch: "klp_e2e_target_patch", Target: StateUnpatched},
			// Unpatching: the tasks still at 1 block.
			Tasks: []TaskState{
				{PID: 387, TID: 387, State: StatePatched},
				{PID: 577, TID: 577, State: StatePatched},
				{PID: 601, TID: 610, State: StatePatched},
			},
			Stats: ScanStats{Tasks: 14},
		}},
		// No transition: nothing blocks and no task is read.
		{"kernel-6.14", Blocking{}},
		{"kernel-4.12", Blocking{}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			fs, _ := fixtureFS(t, tc.fixture)
			patches, err := fs.Patches()
			if err != nil {
				t.Fatal(err)
			}
			got, err := fs.BlockingTasks(patches)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("BlockingTasks(): unexpected diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBlockingTasksGarbageState(t *testing.T) {
	t.Parallel()
	fs, root := fixtureFS(t, "error-patch-state-garbage")
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.BlockingTasks(patches)
	if err != nil {
		t.Fatal(err)
	}
	// The unreadable task is reported, never taken for a blocking or a
	// switched one.
	want := Blocking{
		Transition: &Transition{Patch: "klp_e2e_target_patch", Target: StatePatched},
		Tasks:      []TaskState{{PID: 387, TID: 387, State: StateUnpatched}},
		Stats: ScanStats{Tasks: 3, Unreadable: []TaskError{{
			PID: 530, TID: 530, Path: filepath.Join(root, "proc/530/task/530/patch_state"),
		}}},
	}
	ignoreErr := cmp.Transformer("taskError", func(e TaskError) TaskError { e.Err = nil; return e })
	if diff := cmp.Diff(want, got, ignoreErr); diff != "" {
		t.Errorf("BlockingTasks(): unexpected diff (-want +got):\n%s", diff)
	}
	if len(got.Stats.Unreadable) == 1 && !errors.Is(got.Stats.Unreadable[0], ErrParse) {
		t.Errorf("Unreadable[0] = %v, want ErrParse", got.Stats.Unreadable[0])
	}
}

func TestBlockingTasksNoTransitionReadsNothing(t *testing.T) {
	t.Parallel()
	// Garbage in every patch_state does not matter when nothing is in
	// transition: no task is read.
	fs, _ := archiveFS(t, `-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
0
-- proc/100/task/100/patch_state --
banana
`)
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.BlockingTasks(patches)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Blocking{}, got); diff != "" {
		t.Errorf("BlockingTasks(): unexpected diff (-want +got):\n%s", diff)
	}
}
