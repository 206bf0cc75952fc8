package livepatch

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func kgrFns(state int, objs ...string) []KGraftFunction {
	var fns []KGraftFunction
	for i := 0; i+1 < len(objs); i += 2 {
		fns = append(fns, KGraftFunction{Name: objs[i], Object: objs[i+1], Sympos: 1, State: state})
	}
	return fns
}

func TestKGraftPatches(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "sle12-kgraft")
	got, err := fs.KGraftPatches()
	if err != nil {
		t.Fatal(err)
	}
	want := []KGraftPatch{{
		// Reverted: every function in state 4. Still loaded, not active.
		Name: "kgraft_patch_2_2_1", Active: false, Refs: ptr(0), ReplaceAll: ptr(true),
		Functions: kgrFns(4, "SyS_keyctl", "vmlinux", "tcp_v4_syn_recv_sock", "vmlinux", "xfs_iget", "xfs"),
	}, {
		// Being applied: state 1 (SLOW).
		Name: "kgraft_patch_3_2_1", Active: true, Refs: ptr(0), ReplaceAll: ptr(true),
		Functions: kgrFns(1, "SyS_keyctl", "vmlinux", "tcp_v4_syn_recv_sock", "vmlinux", "xfs_iget", "xfs", "ovl_setattr", "overlay"),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("KGraftPatches(): unexpected diff (-want +got):\n%s", diff)
	}
}

func TestKGraftInProgress(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "sle12-kgraft")
	ip, err := fs.KGraftInProgress()
	if err != nil || !ip {
		t.Errorf("KGraftInProgress() = %v, %v, want true", ip, err)
	}
	fs, _ = archiveFS(t, "-- sys/kernel/kgraft/in_progress --\n0\n")
	if ip, err := fs.KGraftInProgress(); err != nil || ip {
		t.Errorf("KGraftInProgress() = %v, %v, want false", ip, err)
	}
	fs, _ = archiveFS(t, "-- sys/kernel/kgraft/in_progress --\nmaybe\n")
	if _, err := fs.KGraftInProgress(); !errors.Is(err, ErrParse) {
		t.Errorf("KGraftInProgress() = %v, want ErrParse", err)
	}
}

func TestKGraftNotSupported(t *testing.T) {
	t.Parallel()
	for _, fixture := range []string{"no-livepatch", "kernel-6.1"} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			fs, _ := fixtureFS(t, fixture)
			if _, err := fs.KGraftPatches(); !errors.Is(err, ErrNotSupported) {
				t.Errorf("KGraftPatches() = %v, want ErrNotSupported", err)
			}
			if _, err := fs.KGraftInProgress(); err == nil {
				t.Error("KGraftInProgress() succeeded without /sys/kernel/kgraft")
			}
			if _, err := fs.KGraftBlocking(true); err == nil {
				t.Error("KGraftBlocking() succeeded without /sys/kernel/kgraft")
			}
		})
	}
}

func TestKGraftBlocking(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "sle12-kgraft")
	tr := &Transition{Target: StatePatched}
	for _, tc := range []struct {
		threads bool
		want    Blocking
	}{
		// Per process: the "any thread" flag, so nscd (1021) is listed
		// although its leader has migrated. TID is the PID.
		{false, Blocking{Transition: tr, Stats: ScanStats{Tasks: 6}, Tasks: []TaskState{
			{PID: 96, TID: 96, State: 1}, {PID: 1021, TID: 1021, State: 1}, {PID: 1100, TID: 1100, State: 1},
		}}},
		// Per thread: nscd's thread 1025 alone.
		{true, Blocking{Transition: tr, Stats: ScanStats{Tasks: 8}, Tasks: []TaskState{
			{PID: 96, TID: 96, State: 1}, {PID: 1021, TID: 1025, State: 1}, {PID: 1100, TID: 1100, State: 1},
		}}},
	} {
		got, err := fs.KGraftBlocking(tc.threads)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("KGraftBlocking(%v): unexpected diff (-want +got):\n%s", tc.threads, diff)
		}
	}
}

func TestKGraftBlockingNotInProgress(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, `-- sys/kernel/kgraft/in_progress --
0
-- proc/5/kgr_in_progress --
1
-- proc/5/task/5/kgr_in_progress --
1
`)
	got, err := fs.KGraftBlocking(true)
	if err != nil {
		t.Fatal(err)
	}
	// A stale flag does not matter once kGraft says it is done.
	if diff := cmp.Diff(Blocking{}, got); diff != "" {
		t.Errorf("KGraftBlocking(): unexpected diff (-want +got):\n%s", diff)
	}
}

func TestParseKGraftState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     []KGraftFunction
	}{
		{"header and rows", "Function              Object                Sympos  State\n" +
			"SyS_keyctl            vmlinux                    1      2\n" +
			"a_very_long_function_name_indeed  xfs           2      5\n",
			[]KGraftFunction{{"SyS_keyctl", "vmlinux", 1, 2}, {"a_very_long_function_name_indeed", "xfs", 2, 5}}},
		// The first kGraft kernels printed "name state abort_if_missing".
		{"three columns", "SyS_iopl 2 1\nsys_keyctl 4 0\n",
			[]KGraftFunction{{Name: "SyS_iopl", State: 2}, {Name: "sys_keyctl", State: 4}}},
		{"empty", "", nil},
		{"header only", "Function              Object                Sympos  State\n", nil},
		{"garbage rows skipped", "x y\nname obj pos 1\nname obj 1 st\nok vmlinux 1 3\n",
			[]KGraftFunction{{"ok", "vmlinux", 1, 3}}},
	} {
		if diff := cmp.Diff(tc.want, parseKGraftState([]byte(tc.in))); diff != "" {
			t.Errorf("%s: unexpected diff (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestKGraftActive(t *testing.T) {
	t.Parallel()
	// A patch is inactive once every function is reverting or reverted;
	// one that cannot tell (no table, or an empty one) counts as active.
	fs, _ := archiveFS(t, `-- sys/kernel/kgraft/in_progress --
0
-- sys/kernel/kgraft/reverting/state --
Function              Object                Sympos  State
f                     vmlinux                    1      3
g                     vmlinux                    1      4
-- sys/kernel/kgraft/mixed/state --
Function              Object                Sympos  State
f                     vmlinux                    1      4
g                     ext4                       1      5
-- sys/kernel/kgraft/notable/refs --
2
-- sys/kernel/kgraft/empty/state --
Function              Object                Sympos  State
`)
	got, err := fs.KGraftPatches()
	if err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, p := range got {
		active[p.Name] = p.Active
	}
	want := map[string]bool{"empty": true, "mixed": true, "notable": true, "reverting": false}
	if diff := cmp.Diff(want, active); diff != "" {
		t.Errorf("Active: unexpected diff (-want +got):\n%s", diff)
	}
}
