package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/kernel"
)

// TestUnprivileged runs the read commands as an ordinary user against the
// transition-blocking tree with the modes the kernel gives: sysfs is
// world-readable, patch_state and stack are 0400 and owned by the task's
// user. Only python3 (2050) belongs to the user. status, check and patches
// work; blocking lists what it can read and fails, saying that the list is
// incomplete, rather than telling a user that nothing blocks. Root reads
// every file whatever its mode, so as root the test runs itself again as
// uid 65534.
func TestUnprivileged(t *testing.T) {
	if root, ok := fakefs.InUnprivilegedChild(); ok {
		checkUnprivileged(t, root)
		return
	}
	t.Parallel()
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-blocking.txtar"))
	err := filepath.WalkDir(filepath.Join(root, "proc"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch d.Name() {
		case "patch_state", "stack":
			if err := os.Chmod(path, 0o400); err != nil {
				return err
			}
		}
		// The user's own process.
		if strings.HasPrefix(path, filepath.Join(root, "proc/2050")+"/") && d.Name() != "stack" {
			return os.Chown(path, fakefs.Nobody, fakefs.Nobody)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		checkUnprivileged(t, root)
		return
	}
	fakefs.RunUnprivileged(t, "TestUnprivileged", root)
}

func checkUnprivileged(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Fatal("running as root: permission errors cannot happen")
	}
	run := func(args ...string) (string, string, cli.ExitCode) {
		var stdout, stderr bytes.Buffer
		env := &cli.Env{
			IO:      &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
			Getpid:  func() int { return fakePID },
			Getppid: func() int { return fakePPID },
			Getpgrp: func() int { return fakePGRP },
			OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(func(pid int, sig syscall.Signal) error {
				t.Errorf("kill(%d, %d) called", pid, sig)
				return nil
			})}),
			Sleep:   func(time.Duration) {},
			Geteuid: os.Geteuid,
		}
		argv := append([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}, args...)
		code := cli.Run(argv, env)
		return stdout.String(), strings.ReplaceAll(stderr.String(), root, "$ROOT"), code
	}
	incomplete := "klp: could not read the state of 15 task(s) (read $ROOT/proc/1/task/1/patch_state: permission denied); run as root to see every blocking task\n"
	for _, tc := range []struct {
		args           []string
		stdout, stderr string
		code           cli.ExitCode
	}{
		{[]string{"status"}, "in_progress\n", "", cli.ExitOK},
		{[]string{"check"}, "", "", cli.ExitError},
		{[]string{"patches"}, "livepatch_1_160000_1_1\nlivepatch_2_160000_1_1\n", "", cli.ExitOK},
		{[]string{"blocking"}, "2050\n", incomplete, cli.ExitError},
		{[]string{"-v", "blocking"}, "2050 /usr/bin/python3 /usr/local/bin/nfs-monitor.py --interval 30\n", incomplete, cli.ExitError},
		// Stacks need CAP_SYS_ADMIN, even for one's own tasks.
		{[]string{"-vv", "blocking"}, "2050 /usr/bin/python3 /usr/local/bin/nfs-monitor.py --interval 30\n    (stack not readable: permission denied)\n", incomplete, cli.ExitError},
	} {
		stdout, stderr, code := run(tc.args...)
		if diff := cmp.Diff(tc.stdout, stdout); diff != "" {
			t.Errorf("klp %v: stdout: unexpected diff (-want +got):\n%s", tc.args, diff)
		}
		if diff := cmp.Diff(tc.stderr, stderr); diff != "" {
			t.Errorf("klp %v: stderr: unexpected diff (-want +got):\n%s", tc.args, diff)
		}
		if code != tc.code {
			t.Errorf("klp %v: exit status %d, want %d", tc.args, code, tc.code)
		}
	}

	// The JSON document lists every unreadable task with the C library's
	// English error.
	stdout, _, code := run("--json", "blocking")
	if code != cli.ExitError {
		t.Errorf("klp --json blocking: exit status %d, want 1", code)
	}
	var doc struct {
		Tasks []struct {
			PID int `json:"pid"`
		} `json:"tasks"`
		Unreadable []struct {
			PID   int    `json:"pid"`
			TID   int    `json:"tid"`
			Path  string `json:"path"`
			Error string `json:"error"`
		} `json:"unreadable"`
		TasksScanned int `json:"tasks_scanned"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("klp --json blocking: %v\n%s", err, stdout)
	}
	if len(doc.Tasks) != 1 || doc.Tasks[0].PID != 2050 || doc.TasksScanned != 1 || len(doc.Unreadable) != 15 {
		t.Errorf("klp --json blocking = %+v, want task 2050, 1 scanned, 15 unreadable", doc)
	}
	for _, u := range doc.Unreadable {
		want := filepath.Join(root, fmt.Sprintf("proc/%d/task/%d/patch_state", u.PID, u.TID))
		if u.Error != "permission denied" || u.Path != want {
			t.Errorf("unreadable entry %+v, want path %s and \"permission denied\"", u, want)
		}
	}
}
