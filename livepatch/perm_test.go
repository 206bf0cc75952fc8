package livepatch

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/klp-project/klp/internal/fakefs"
)

// unreadableTree is a transition in which some tasks cannot be read by an
// unprivileged user: patch_state is mode 0400 and owned by the task's user
// on a real kernel, so another user's tasks give EACCES.
const unreadableTree = `chmod 0000 proc/300/task/300/patch_state
chmod 0000 proc/400/task
chmod 0000 proc/500/task/501/patch_state
chmod 0400 proc/100/task/100/stack
-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
1
-- proc/100/task/100/patch_state --
0
-- proc/100/task/100/stat --
100 (blocker) S 1 100 100 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 50 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/100/task/100/stack --
[<0>] do_sys_poll+0x3dc/0x560
-- proc/100/cmdline --
blocker<NUL>
-- proc/200/task/200/patch_state --
1
-- proc/300/task/300/patch_state --
0
-- proc/400/task/400/patch_state --
0
-- proc/500/task/500/patch_state --
1
-- proc/500/task/501/patch_state --
0
`

// TestUnreadableTasks checks that tasks an unprivileged user cannot read
// are reported as unreadable with EACCES, and neither dropped nor counted
// as exited. Root reads every file whatever its mode, so as root the test
// runs itself again as uid 65534.
func TestUnreadableTasks(t *testing.T) {
	if root, ok := fakefs.InUnprivilegedChild(); ok {
		checkUnreadableTasks(t, root)
		return
	}
	t.Parallel()
	root := t.TempDir()
	if err := fakefs.Unpack(txtar.Parse([]byte(unreadableTree)), root); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		checkUnreadableTasks(t, root)
		return
	}
	fakefs.RunUnprivileged(t, "TestUnreadableTasks", root)
}

func checkUnreadableTasks(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Fatal("running as root: permission errors cannot happen")
	}
	fs, err := NewFS(filepath.Join(root, "sys"), filepath.Join(root, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.BlockingTasks(patches)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]TaskState{{PID: 100, TID: 100, State: StateUnpatched}}, b.Tasks); diff != "" {
		t.Errorf("blocking: unexpected diff (-want +got):\n%s", diff)
	}
	p := func(rel string) string { return filepath.Join(root, "proc", rel) }
	want := []taskErr{
		{PID: 300, TID: 300, Path: p("300/task/300/patch_state"), Perm: true},
		{PID: 400, TID: 0, Path: p("400/task"), Perm: true},
		{PID: 500, TID: 501, Path: p("500/task/501/patch_state"), Perm: true},
	}
	if diff := cmp.Diff(want, reduce(b.Stats.Unreadable)); diff != "" {
		t.Errorf("unreadable: unexpected diff (-want +got):\n%s", diff)
	}
	if b.Stats.Tasks != 3 || b.Stats.Exited != 0 {
		t.Errorf("stats = %+v, want 3 tasks read, none exited", b.Stats)
	}

	// The task itself is world-readable; its stack is not.
	task, err := fs.Task(100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if task.Cmdline != "blocker" {
		t.Errorf("Task(100, 100).Cmdline = %q", task.Cmdline)
	}
	_, err = fs.TaskStack(100, 100)
	if !errors.Is(err, os.ErrPermission) || errors.Is(err, ErrStackUnavailable) {
		t.Errorf("TaskStack(100, 100) = %v, want a permission error", err)
	}
}
