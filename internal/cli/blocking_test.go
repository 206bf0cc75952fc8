package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakefs"
)

// loadArchive unpacks an inline txtar archive and returns the --sysfs and
// --procfs options for it.
func loadArchive(t *testing.T, archive string) []string {
	t.Helper()
	root := t.TempDir()
	if err := fakefs.Unpack(txtar.Parse([]byte(archive)), root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sys", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}
}

// withRoots puts the root options after the program name.
func withRoots(roots []string, args ...string) []string {
	return append(append([]string{args[0]}, roots...), args[1:]...)
}

// TestKGraftMessages checks the SLE 12 wording: the empty-list messages of
// kgr blocking and blocking_threads, and the initial-patch CVE line.
func TestKGraftMessages(t *testing.T) {
	t.Parallel()
	roots := loadArchive(t, `-- sys/kernel/kgraft/in_progress --
0
-- sys/kernel/kgraft/kgraft_patch_1_1_1/state --
Function              Object                Sympos  State
SyS_keyctl            vmlinux                    1      2
-- proc/1/kgr_in_progress --
0
-- proc/1/task/1/kgr_in_progress --
0
`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kgr", "-v", "blocking"}, "no processes with kgr_in_progress set\n"},
		{[]string{"kgr", "-v", "blocking_threads"}, "no threads with kgr_in_progress set\n"},
		{[]string{"klp", "-v", "blocking"}, "no threads with klp_in_progress set\n"},
		{[]string{"kgr", "blocking"}, ""},
		{[]string{"kgr", "status"}, "ready\n"},
	} {
		stdout, stderr, code := runArgs(t, withRoots(roots, tc.args...)...)
		if diff := cmp.Diff(tc.want, stdout); diff != "" || code != cli.ExitOK || stderr != "" {
			t.Errorf("%v: exit status %d, stderr %q, stdout: unexpected diff (-want +got):\n%s", tc.args, code, stderr, diff)
		}
	}

	// An initial package, whose changelog names no CVE.
	var stdout, stderr strings.Builder
	env := &cli.Env{
		IO:       &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
		Packages: &fakePackages{pkgs: map[string]admin.PackageInfo{"kgraft_patch_1_1_1": {Manager: "rpm", Full: "kgraft-patch-3_12_28-4-default-1-2.1.x86_64"}}},
	}
	if code := cli.Run(withRoots(roots, "kgr", "-v", "patches"), env); code != cli.ExitOK {
		t.Errorf("kgr -v patches: exit status %d: %s", code, stderr.String())
	}
	want := `kgraft_patch_1_1_1
    active: 1
    RPM: kgraft-patch-3_12_28-4-default-1-2.1.x86_64
    CVE: (none - this is an initial kGraft patch)
    bug fixes and enhancements: (none)
`
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("kgr -v patches: unexpected diff (-want +got):\n%s", diff)
	}
}

// TestBlockingWithoutStacks: a kernel without CONFIG_STACKTRACE has no
// stack files. -vv says so for each task, and that is not an error.
func TestBlockingWithoutStacks(t *testing.T) {
	t.Parallel()
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-unpatching.txtar"))
	stacks, err := filepath.Glob(filepath.Join(root, "proc/*/task/*/stack"))
	if err != nil || len(stacks) == 0 {
		t.Fatalf("no stack files: %v", err)
	}
	for _, s := range stacks {
		// proc/self and proc/thread-self lead to the same files.
		if err := os.Remove(s); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	roots := []string{"--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}
	stdout, stderr, code := runArgs(t, withRoots(roots, "klp", "-vv", "blocking")...)
	want := `387 [klp_e2e_busy]
    (stack traces not available on this kernel)
577 gzip -9
    (stack traces not available on this kernel)
610 /usr/bin/containerd
    (stack traces not available on this kernel)
`
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("klp -vv blocking: unexpected diff (-want +got):\n%s", diff)
	}
	if code != cli.ExitOK || stderr != "" {
		t.Errorf("klp -vv blocking: exit status %d, stderr %q, want 0 and nothing", code, stderr)
	}

	stdout, _, code = runArgs(t, withRoots(roots, "klp", "--json", "-vv", "blocking")...)
	var doc struct {
		Tasks []struct {
			PID        int      `json:"pid"`
			TID        int      `json:"tid"`
			Stack      []string `json:"stack"`
			StackError *string  `json:"stack_error"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != cli.ExitOK {
		t.Fatalf("klp --json -vv blocking: exit status %d, %v\n%s", code, err, stdout)
	}
	var tasks [][2]int
	for _, task := range doc.Tasks {
		tasks = append(tasks, [2]int{task.PID, task.TID})
	}
	if diff := cmp.Diff([][2]int{{387, 387}, {577, 577}, {601, 610}}, tasks); diff != "" {
		t.Errorf("klp --json -vv blocking: tasks (pid, tid): unexpected diff (-want +got):\n%s", diff)
	}
	for i, task := range doc.Tasks {
		if task.Stack != nil || task.StackError == nil || !strings.Contains(*task.StackError, "not available") {
			t.Errorf("task %d: stack %q, stack_error %v, want null and \"not available\"", i, task.Stack, task.StackError)
		}
	}
}

// TestBlockingTaskGone: a blocking task whose /proc entry is gone by the
// time its details are read has exited, so it no longer blocks: it is left
// out, and that is not an error.
func TestBlockingTaskGone(t *testing.T) {
	t.Parallel()
	roots := loadArchive(t, `-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
1
-- proc/10/task/10/patch_state --
0
-- proc/10/task/10/stat --
10 (worker) S 1 10 10 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/10/cmdline --
worker<NUL>
-- proc/20/task/20/patch_state --
0
`)
	stdout, stderr, code := runArgs(t, withRoots(roots, "klp", "-v", "blocking")...)
	if diff := cmp.Diff("10 worker\n", stdout); diff != "" || code != cli.ExitOK || stderr != "" {
		t.Errorf("klp -v blocking: exit status %d, stderr %q, stdout: unexpected diff (-want +got):\n%s", code, stderr, diff)
	}
}
