package fakefs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestFixtures loads every fixture tree under testdata/ at the repository
// root and checks that it looks like what a kernel shows, so that the trees
// every package tests against stay realistic as they are edited. Trees
// named error-* break one rule on purpose and are checked for the rest.
func TestFixtures(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("../../testdata/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("found %d fixtures, want at least 10", len(paths))
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".txtar")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(a.Comment), "# ") {
				t.Error("the archive comment does not start with a description")
			}
			root := Load(t, path)
			for _, d := range []string{"sys", "proc"} {
				if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
					t.Errorf("no %s/ part: %v", d, err)
				}
			}
			checkLivepatch(t, root, name)
			checkProc(t, root, name)
		})
	}
}

// checkLivepatch checks /sys/kernel/livepatch: every attribute holds
// "%d\n" of a value the kernel prints, and at most one patch is in
// transition.
func checkLivepatch(t *testing.T, root, fixture string) {
	t.Helper()
	lp := filepath.Join(root, "sys/kernel/livepatch")
	patches, err := os.ReadDir(lp)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	transitions := 0
	for _, p := range patches {
		dir := filepath.Join(lp, p.Name())
		for attr, valid := range map[string]func(int) bool{
			"enabled":     bool01,
			"transition":  bool01,
			"replace":     bool01,
			"stack_order": func(n int) bool { return n >= 1 && n <= len(patches) },
		} {
			b, err := os.ReadFile(filepath.Join(dir, attr))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			n, ok := attrInt(b)
			if !ok || !valid(n) {
				if !strings.HasPrefix(fixture, "error-") {
					t.Errorf("%s/%s = %q", p.Name(), attr, b)
				}
				continue
			}
			if attr == "transition" && n == 1 {
				transitions++
			}
		}
		for _, attr := range []string{"force", "signal"} {
			if fi, err := os.Stat(filepath.Join(dir, attr)); err == nil && fi.Mode().Perm() != 0o200 {
				t.Errorf("%s/%s has mode %o, want 200 (write-only)", p.Name(), attr, fi.Mode().Perm())
			}
		}
	}
	if transitions > 1 {
		t.Errorf("%d patches in transition; the kernel runs one at a time", transitions)
	}
}

// checkProc checks every task: stat names the thread and its comm, and the
// per-task state files hold -1, 0 or 1 (kgr_in_progress 0 or 1).
func checkProc(t *testing.T, root, fixture string) {
	t.Helper()
	proc := filepath.Join(root, "proc")
	pids, err := os.ReadDir(proc)
	if err != nil {
		t.Fatal(err)
	}
	tasks := 0
	for _, p := range pids {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(proc, p.Name(), "cmdline")); err != nil {
			t.Errorf("process %d: %v", pid, err)
		}
		tids, err := os.ReadDir(filepath.Join(proc, p.Name(), "task"))
		if err != nil {
			t.Errorf("process %d: %v", pid, err)
			continue
		}
		leader := false
		for _, tid := range tids {
			tasks++
			dir := filepath.Join(proc, p.Name(), "task", tid.Name())
			leader = leader || tid.Name() == p.Name()
			stat, err := os.ReadFile(filepath.Join(dir, "stat"))
			if err != nil {
				t.Errorf("task %s: %v", tid.Name(), err)
				continue
			}
			fields := strings.Fields(string(stat))
			if len(fields) < 44 || fields[0] != tid.Name() || !strings.HasSuffix(string(stat), "\n") {
				t.Errorf("task %s: stat %q is not a stat line of this task", tid.Name(), stat)
			}
			comm, err := os.ReadFile(filepath.Join(dir, "comm"))
			if err != nil {
				t.Errorf("task %s: %v", tid.Name(), err)
			} else if c := strings.TrimSuffix(string(comm), "\n"); !strings.Contains(string(stat), "("+c+")") {
				t.Errorf("task %s: comm %q does not match stat %q", tid.Name(), comm, stat)
			} else if len(c) > 15 && !strings.HasPrefix(c, "kworker/") {
				// TASK_COMM_LEN is 16; only workqueue workers show more
				// (wq_worker_comm adds the workqueue, since 4.17).
				t.Errorf("task %s: comm %q is longer than 15 bytes", tid.Name(), c)
			}
			for file, valid := range map[string]func(int) bool{
				"patch_state":     func(n int) bool { return n >= -1 && n <= 1 },
				"kgr_in_progress": bool01,
			} {
				b, err := os.ReadFile(filepath.Join(dir, file))
				if os.IsNotExist(err) {
					continue
				}
				if n, ok := attrInt(b); (!ok || !valid(n)) && !strings.HasPrefix(fixture, "error-") {
					t.Errorf("task %s: %s = %q", tid.Name(), file, b)
				}
			}
		}
		if !leader {
			t.Errorf("process %d has no task directory for its leader", pid)
		}
	}
	if tasks < 3 {
		t.Errorf("%d tasks, want a realistic few", tasks)
	}
}

func bool01(n int) bool { return n == 0 || n == 1 }

func attrInt(b []byte) (int, bool) {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "\n"))
	return n, err == nil
}
