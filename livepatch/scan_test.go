package livepatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/sysfile"
)

// collect runs ScanTasks and returns what visit saw, sorted.
func collect(t *testing.T, fs FS, opts ScanOptions) ([]TaskState, ScanStats, error) {
	t.Helper()
	var mu sync.Mutex
	var seen []TaskState
	stats, err := fs.ScanTasks(opts, func(ts TaskState) {
		mu.Lock()
		seen = append(seen, ts)
		mu.Unlock()
	})
	sortTasks(seen)
	return seen, stats, err
}

func sortTasks(ts []TaskState) {
	sort.Slice(ts, func(i, j int) bool {
		return ts[i].PID < ts[j].PID || ts[i].PID == ts[j].PID && ts[i].TID < ts[j].TID
	})
}

// taskErr is a TaskError reduced to what a test can compare.
type taskErr struct {
	PID, TID int
	Path     string
	Parse    bool // errors.Is(err, ErrParse)
	Perm     bool // errors.Is(err, os.ErrPermission)
}

func reduce(errs []TaskError) []taskErr {
	var out []taskErr
	for _, e := range errs {
		out = append(out, taskErr{e.PID, e.TID, e.Path, errors.Is(e, ErrParse), errors.Is(e, os.ErrPermission)})
	}
	return out
}

// scanTree has per-thread and per-process files, entries that are not
// processes, and a process whose task directory is missing (it exited
// between the listing of /proc and the scan).
const scanTree = `symlink proc/self 300
symlink proc/thread-self 300/task/300
-- proc/version --
Linux version 6.12.0
-- proc/sys/kernel/tainted --
32768
-- proc/100/patch_state --
1
-- proc/100/task/100/patch_state --
1
-- proc/100/task/101/patch_state --
0
-- proc/100/task/102/patch_state --
-1
-- proc/200/patch_state --
0
-- proc/200/task/200/patch_state --
0
-- proc/300/patch_state --
-1
-- proc/300/task/300/patch_state --
-1
-- proc/400/cmdline --
-- proc/12345678901/task/1/patch_state --
1
-- proc/0x10/task/16/patch_state --
1
`

func TestScanTasksThreads(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, scanTree)
	want := []TaskState{
		{100, 100, StatePatched}, {100, 101, StateUnpatched}, {100, 102, StateIdle},
		{200, 200, StateUnpatched}, {300, 300, StateIdle},
	}
	for _, workers := range []int{0, 1, 2, 16} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			got, stats, err := collect(t, fs, ScanOptions{Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("visited: unexpected diff (-want +got):\n%s", diff)
			}
			// 400 has no task directory: it exited.
			if diff := cmp.Diff(ScanStats{Tasks: 5, Exited: 1}, stats); diff != "" {
				t.Errorf("stats: unexpected diff (-want +got):\n%s", diff)
			}
		})
	}
}

// A paced scan reads the same tasks; a stopped one reads none and says so;
// CountBlocking counts what Blocking would list.
func TestScanTasksPacedAndStopped(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, scanTree)
	_, stats, err := collect(t, fs, ScanOptions{Workers: 1, Busy: 0.5})
	if err != nil || stats.Tasks != 5 {
		t.Errorf("paced scan: %+v, %v; want 5 tasks", stats, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, stats, err := collect(t, fs, ScanOptions{Context: ctx})
	if !errors.Is(err, context.Canceled) || len(got) != 0 || stats.Tasks != 0 {
		t.Errorf("stopped scan: %v, %+v, %v; want nothing read and context.Canceled", got, stats, err)
	}
	n, _, err := fs.CountBlocking(StatePatched, ScanOptions{Busy: 0.5})
	if err != nil || n != 2 {
		t.Errorf("CountBlocking(patched) = %d, %v; want 2 (101 and 200)", n, err)
	}
	if n, _, err := fs.CountBlocking(StateUnpatched, ScanOptions{}); err != nil || n != 1 {
		t.Errorf("CountBlocking(unpatched) = %d, %v; want 1 (100)", n, err)
	}
}

// The pacer owes rest for the CPU used beyond its share, counted from the
// scan's start, and none until that is at least minRest.
func TestPacer(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	now, cpu, cpuOK := start, 3*time.Second, true
	p := newPacer(0.02, func() time.Time { return now }, func() (time.Duration, bool) { return cpu, cpuOK })
	for _, tc := range []struct {
		elapsed, used, want time.Duration
	}{
		{0, 0, 0},
		// 5 ms of CPU at 2% is owed 250 ms of time: under minRest.
		{0, 5 * time.Millisecond, 0},
		// 10 ms is owed 500 ms: minRest itself is rested.
		{0, 10 * time.Millisecond, minRest},
		// 20 ms is owed 1 s, of which 100 ms has passed.
		{100 * time.Millisecond, 20 * time.Millisecond, 900 * time.Millisecond},
		// The share is of the whole time since the start.
		{time.Second, 20 * time.Millisecond, 0},
		{10 * time.Second, 220 * time.Millisecond, time.Second},
	} {
		now, cpu = start.Add(tc.elapsed), 3*time.Second+tc.used
		if got := p.due(); got != tc.want {
			t.Errorf("after %v with %v of CPU: rest %v, want %v", tc.elapsed, tc.used, got, tc.want)
		}
	}
	cpuOK = false
	if got := p.due(); got != 0 {
		t.Errorf("CPU unreadable: rest %v, want 0", got)
	}
	if got := newPacer(0.02, time.Now, func() (time.Duration, bool) { return 0, false }).due(); got != 0 {
		t.Errorf("CPU unreadable from the start: rest %v, want 0", got)
	}
}

// processCPU reads the CPU time this process has used, which is not
// nothing by the time a test runs.
func TestProcessCPU(t *testing.T) {
	t.Parallel()
	if d, ok := processCPU(); !ok || d <= 0 {
		t.Errorf("processCPU() = %v, %v; want a positive time", d, ok)
	}
}

func TestScanTasksProcesses(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, scanTree)
	got, stats, err := collect(t, fs, ScanOptions{Processes: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskState{{100, 100, StatePatched}, {200, 200, StateUnpatched}, {300, 300, StateIdle}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("visited: unexpected diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ScanStats{Tasks: 3, Exited: 1}, stats); diff != "" {
		t.Errorf("stats: unexpected diff (-want +got):\n%s", diff)
	}
}

func TestScanTasksOtherFile(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, `-- proc/7/task/7/kgr_in_progress --
1
-- proc/7/task/8/kgr_in_progress --
0
-- proc/7/task/8/patch_state --
1
`)
	got, stats, err := collect(t, fs, ScanOptions{File: "kgr_in_progress"})
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskState{{7, 7, 1}, {7, 8, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("visited: unexpected diff (-want +got):\n%s", diff)
	}
	if stats.Tasks != 2 {
		t.Errorf("stats = %+v, want 2 tasks", stats)
	}
}

func TestScanTasksGarbage(t *testing.T) {
	t.Parallel()
	fs, root := archiveFS(t, `-- proc/1/task/1/patch_state --
1
-- proc/2/task/2/patch_state --
banana
-- proc/3/task/3/patch_state --
-- proc/4/task/4/patch_state --
1 0
-- proc/5/task/5/patch_state --
-
-- proc/6/task/6/patch_state --
0123456789012345678901234567890123456789
-- proc/7/task/7/patch_state/ --
`)
	got, stats, err := collect(t, fs, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]TaskState{{1, 1, StatePatched}}, got); diff != "" {
		t.Errorf("visited: unexpected diff (-want +got):\n%s", diff)
	}
	p := func(pid int) string {
		return filepath.Join(root, "proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "patch_state")
	}
	want := []taskErr{
		{2, 2, p(2), true, false},
		{3, 3, p(3), true, false},
		{4, 4, p(4), true, false},
		{5, 5, p(5), true, false},
		{6, 6, p(6), true, false},
		// A directory where the file should be: EISDIR from read(2).
		{7, 7, p(7), false, false},
	}
	if diff := cmp.Diff(want, reduce(stats.Unreadable)); diff != "" {
		t.Errorf("unreadable: unexpected diff (-want +got):\n%s", diff)
	}
	if stats.Tasks != 1 || stats.Exited != 0 {
		t.Errorf("stats = %+v, want 1 task, none exited", stats)
	}
	for _, u := range stats.Unreadable {
		if u.Error() == "" || !errors.Is(u, u.Err) {
			t.Errorf("TaskError %+v: bad Error/Unwrap", u)
		}
	}
}

// TestScanTasksOutOfRangeState: the kernel prints -1, 0 or 1 in
// patch_state, and the scanner's own error says "want
// -1, 0 or 1". A 2 is not a state: it must be reported unreadable, not
// taken for a blocking task (it is >= 0 and differs from any target).
func TestScanTasksOutOfRangeState(t *testing.T) {
	t.Parallel()
	fs, root := archiveFS(t, `-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
1
-- proc/1/task/1/patch_state --
2
-- proc/2/task/2/patch_state --
-2
-- proc/3/task/3/patch_state --
0
`)
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.BlockingTasks(patches)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]TaskState{{3, 3, StateUnpatched}}, b.Tasks); diff != "" {
		t.Errorf("blocking: unexpected diff (-want +got):\n%s", diff)
	}
	p := func(pid int) string {
		return filepath.Join(root, "proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "patch_state")
	}
	want := []taskErr{{1, 1, p(1), true, false}, {2, 2, p(2), true, false}}
	if diff := cmp.Diff(want, reduce(b.Stats.Unreadable)); diff != "" {
		t.Errorf("unreadable: unexpected diff (-want +got):\n%s", diff)
	}
}

func TestScanTasksBadRoot(t *testing.T) {
	t.Parallel()
	fs, root := archiveFS(t, "")
	if err := os.RemoveAll(filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	_, err := fs.ScanTasks(ScanOptions{}, func(TaskState) { t.Error("visit called") })
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ScanTasks() = %v, want an error wrapping os.ErrNotExist", err)
	}
}

// TestScanTasksVanishing removes tasks while the scan runs, from inside the
// visit callback: the kernel removes /proc entries of exiting tasks at any
// time, and ENOENT must count as "exited", never as an error or an
// unreadable task.
func TestScanTasksVanishing(t *testing.T) {
	t.Parallel()
	for _, threads := range []bool{true, false} {
		t.Run(fmt.Sprintf("threads=%v", threads), func(t *testing.T) {
			t.Parallel()
			// Processes 10 (three threads), 20, 30, 40 (two threads).
			tree := map[int][]int{10: {10, 11, 12}, 20: {20}, 30: {30}, 40: {40, 41}}
			_, root := archiveFS(t, "")
			var ft []fakefs.Task
			for pid, tids := range tree {
				for _, tid := range tids {
					ft = append(ft, fakefs.Task{PID: pid, TID: tid, PatchState: 0})
				}
			}
			if err := fakefs.WriteTasks(filepath.Join(root, "proc"), ft); err != nil {
				t.Fatal(err)
			}
			for pid := range tree {
				// The per-process file, for ScanOptions.Processes.
				if err := os.WriteFile(filepath.Join(root, "proc", strconv.Itoa(pid), "patch_state"), []byte("0\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fs := newTestFS(t, root)

			// One worker and fewer than one batch of processes: the whole
			// of /proc is listed before the first task is read, and the
			// first task read decides what is left.
			var first *TaskState
			var visits int
			stats, err := fs.ScanTasks(ScanOptions{Workers: 1, Processes: !threads}, func(ts TaskState) {
				visits++
				if first != nil {
					return
				}
				first = &ts
				// Every other task exits now: its thread directory, or
				// its whole process directory.
				for pid, tids := range tree {
					if pid != ts.PID {
						if err := os.RemoveAll(filepath.Join(root, "proc", strconv.Itoa(pid))); err != nil {
							t.Error(err)
						}
						continue
					}
					for _, tid := range tids {
						if tid != ts.TID {
							if err := os.RemoveAll(filepath.Join(root, "proc", strconv.Itoa(pid), "task", strconv.Itoa(tid))); err != nil {
								t.Error(err)
							}
						}
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				t.Fatal("no task visited")
			}
			// What was gone when the scanner got to it: the other threads
			// of the first process (already listed), and each other process
			// once (its task directory is gone).
			exited := len(tree) - 1
			if threads {
				exited += len(tree[first.PID]) - 1
			}
			want := ScanStats{Tasks: 1, Exited: exited}
			if diff := cmp.Diff(want, stats); diff != "" {
				t.Errorf("first task %+v; stats: unexpected diff (-want +got):\n%s", *first, diff)
			}
			if visits != 1 {
				t.Errorf("visit called %d times, want 1", visits)
			}
		})
	}
}

// TestScanTasksScale scans 20,000 generated tasks: 5,000 processes of three
// threads, and one process of 5,000 threads (more than one work chunk),
// and checks the counts and the blocking set exactly.
func TestScanTasksScale(t *testing.T) {
	t.Parallel()
	root := memDir(t)
	if err := fakefs.Unpack(txtar.Parse([]byte(`-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
1
`)), root); err != nil {
		t.Fatal(err)
	}
	fs := newTestFS(t, root)
	state := func(tid int) int {
		switch {
		case tid%13 == 0:
			return -1
		case tid%7 == 0:
			return 0
		}
		return 1
	}
	var tasks []fakefs.Task
	var want []TaskState
	add := func(pid, tid int) {
		s := state(tid)
		tasks = append(tasks, fakefs.Task{PID: pid, TID: tid, PatchState: s, Comm: "w" + strconv.Itoa(tid%10)})
		if s == 0 {
			want = append(want, TaskState{PID: pid, TID: tid, State: StateUnpatched})
		}
	}
	for i := 0; i < 5000; i++ {
		pid := 100000 + 10*i
		for tid := pid; tid < pid+3; tid++ {
			add(pid, tid)
		}
	}
	for tid := 50000; tid < 55000; tid++ {
		add(50000, tid)
	}
	if len(tasks) != 20000 {
		t.Fatalf("generated %d tasks, want 20000", len(tasks))
	}
	if err := fakefs.WriteTasks(filepath.Join(root, "proc"), tasks); err != nil {
		t.Fatal(err)
	}
	sortTasks(want)

	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.BlockingTasks(patches)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ScanStats{Tasks: 20000}, b.Stats); diff != "" {
		t.Errorf("stats: unexpected diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, b.Tasks); diff != "" {
		t.Errorf("blocking: unexpected diff (-want +got):\n%s", diff)
	}

	// Every task is visited exactly once, whatever the number of workers.
	for _, workers := range []int{1, 3, 8} {
		seen := make(map[int]int, len(tasks))
		var mu sync.Mutex
		stats, err := fs.ScanTasks(ScanOptions{Workers: workers}, func(ts TaskState) {
			mu.Lock()
			seen[ts.TID]++
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Tasks != 20000 || len(seen) != 20000 {
			t.Errorf("workers=%d: stats %+v, %d distinct tasks, want 20000", workers, stats, len(seen))
		}
		for tid, n := range seen {
			if n != 1 {
				t.Errorf("workers=%d: task %d visited %d times", workers, tid, n)
			}
		}
	}
}

func TestParseStateBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"-1\n": -1, "0\n": 0, "1\n": 1, "1": 1, "0 \n": 0} {
		got, ok := parseStateBytes([]byte(in))
		if !ok || got != want {
			t.Errorf("parseStateBytes(%q) = %d, %v, want %d, true", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "\n", "-", "--1", "1x", "x", "0x1", "10", "-10", "1234567890"} {
		if got, ok := parseStateBytes([]byte(in)); ok {
			t.Errorf("parseStateBytes(%q) = %d, true, want false", in, got)
		}
	}
}

// forEachNumericEntry hands the numeric entries over in full batches (the
// last one shorter); with a batchSize of 0, one batch per buffer read, none
// of them empty; a directory without numeric entries gives no batch.
func TestForEachNumericEntry(t *testing.T) {
	t.Parallel()
	dir, other := t.TempDir(), t.TempDir()
	want := map[int32]bool{}
	for i := 1; i <= 100; i++ {
		if err := os.Mkdir(filepath.Join(dir, strconv.Itoa(i)), 0o755); err != nil {
			t.Fatal(err)
		}
		want[int32(i)] = true
	}
	for _, d := range []string{dir, other} {
		for _, name := range []string{"self", "x1", "1x"} {
			if err := os.WriteFile(filepath.Join(d, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(t *testing.T, dir string, want map[int32]bool, each func(fd int, fn func([]int32) error) error) []int {
		t.Helper()
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		seen := map[int32]bool{}
		var sizes []int
		if err := each(fd, func(batch []int32) error {
			sizes = append(sizes, len(batch))
			for _, id := range batch {
				if seen[id] {
					t.Errorf("%d seen twice", id)
				}
				seen[id] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(want, seen) {
			t.Errorf("entries %v, want %v", seen, want)
		}
		return sizes
	}
	batched := func(fd int, fn func([]int32) error) error { return forEachNumericEntry(fd, 32, unix.Getdents, fn) }
	// A 256-byte buffer holds about ten entries; the raw listing, the
	// kernel procfs's, lists the same.
	perBuffer := func(fd int, fn func([]int32) error) error {
		return forEachNumericEntryBuf(fd, make([]byte, 256), make([]int32, 0, 8), 0, sysfile.RawGetdents, fn)
	}
	if sizes, want := read(t, dir, want, batched), []int{32, 32, 32, 4}; !cmp.Equal(want, sizes) {
		t.Errorf("batches of %v, want %v", sizes, want)
	}
	if sizes := read(t, dir, want, perBuffer); len(sizes) < 5 || slices.Contains(sizes, 0) {
		t.Errorf("batches of %v, want one per buffer read, none empty", sizes)
	}
	for _, each := range []func(int, func([]int32) error) error{batched, perBuffer} {
		if sizes := read(t, other, map[int32]bool{}, each); len(sizes) != 0 {
			t.Errorf("no numeric entry: batches of %v, want none", sizes)
		}
		// An error from fn stops the listing at that batch, and is
		// returned.
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		stop, calls := errors.New("stop"), 0
		err = each(fd, func([]int32) error { calls++; return stop })
		unix.Close(fd)
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("fn failing: %d call(s), %v; want 1 and its error", calls, err)
		}
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int32{"1\x00": 1, "4194304\x00": 4194304, "2147483647\x00": 2147483647, "7": 7} {
		got, ok := parseID([]byte(in))
		if !ok || got != want {
			t.Errorf("parseID(%q) = %d, %v, want %d, true", in, got, ok, want)
		}
	}
	for _, in := range []string{"\x00", "", "self\x00", "1a\x00", "2147483648\x00", "12345678901\x00", "-1\x00"} {
		if got, ok := parseID([]byte(in)); ok {
			t.Errorf("parseID(%q) = %d, true, want false", in, got)
		}
	}
}

// RecountBlocking reads the listed tasks again: those still blocking stay,
// those switched and those exited go; a file that is not a patch state is
// an error.
func TestRecountBlocking(t *testing.T) {
	t.Parallel()
	fs, root := archiveFS(t, scanTree)
	known := []TaskState{{100, 101, StateUnpatched}, {200, 200, StateUnpatched}, {500, 500, StateUnpatched}}
	got, err := fs.RecountBlocking(StatePatched, known)
	want := []TaskState{{100, 101, StateUnpatched}, {200, 200, StateUnpatched}}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("RecountBlocking = %v, %v; want %v (500 exited)", got, err, want)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/200/task/200/patch_state"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = fs.RecountBlocking(StatePatched, known)
	if err != nil || !cmp.Equal(want[:1], got) {
		t.Errorf("after 200 switched: %v, %v; want %v", got, err, want[:1])
	}
	if got, err := fs.RecountBlocking(StatePatched, nil); err != nil || got != nil {
		t.Errorf("nothing to read: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/100/task/101/patch_state"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.RecountBlocking(StatePatched, known); err == nil {
		t.Error("a bad patch_state: no error")
	}
}

// TestScanTasksUnreadableSorted: the unreadable tasks come sorted by PID
// and TID, whatever order the directories list them in and however many
// workers read them.
func TestScanTasksUnreadableSorted(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	var want [][2]int
	for _, pid := range []int{3, 10, 30} {
		for tid := pid; tid < pid+6; tid++ {
			fmt.Fprintf(&b, "-- proc/%d/task/%d/patch_state --\nx\n", pid, tid)
			want = append(want, [2]int{pid, tid})
		}
	}
	fs, _ := archiveFS(t, b.String())
	for _, workers := range []int{1, 2, 4} {
		_, stats, err := collect(t, fs, ScanOptions{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]int
		for _, u := range stats.Unreadable {
			got = append(got, [2]int{u.PID, u.TID})
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d workers: unreadable (pid, tid): unexpected diff (-want +got):\n%s", workers, diff)
		}
	}
}

// A paced listing of a big process's threads stops when the scan is
// stopped: at 100,000 threads it is paced over minutes, and a wait that
// ended must not wait for it. The scanner is cancelled at its first pause,
// and reads no more: alone, it has read the first paceChunk threads of
// the first getdents64 batch; with other workers, it handed that batch to
// them. Not stopped, a lone worker reads every thread as listed, looking at
// its pace after every paceChunk, and queues nothing.
func TestScanListingStops(t *testing.T) {
	t.Parallel()
	const threads = 6000 // three batches of the 64 KiB buffer
	var tasks [][2]int
	for tid := 1000; tid < 1000+threads; tid++ {
		tasks = append(tasks, [2]int{1000, tid})
	}
	proc, procfd := patchedTasks(t, tasks)
	for _, workers := range []int{1, 2} {
		for _, stop := range []bool{false, true} {
			read, pauses := 0, 0
			var st ScanStats
			q := newWorkQueue(workers)
			s := newScanner(proc, procfd, "patch_state", false, func(TaskState) { read++ }, &st, q)
			s.workers = workers
			ctx, cancel := context.WithCancel(context.Background())
			s.ctx = ctx
			s.pause = func() {
				pauses++
				if stop {
					cancel()
				}
			}
			s.scanPID(1000)
			cancel()
			switch {
			case stop && workers == 1 && (pauses != 1 || read != paceChunk):
				// A lone worker reads each batch as it is listed,
				// looking at its pace after every paceChunk threads.
				t.Errorf("one worker, stopped at the first pause: %d pause(s), %d task(s) read; want 1 and %d", pauses, read, paceChunk)
			case stop && workers > 1 && (pauses != 1 || read != 0):
				// With others, the first batch went to them.
				t.Errorf("%d workers, stopped at the first pause: %d pause(s), %d task(s) read; want 1 and 0", workers, pauses, read)
			case !stop && workers == 1 && (pauses < threads/paceChunk || read != threads || len(q.items) != 0):
				t.Errorf("one worker, not stopped: %d pause(s), %d task(s) read, %d queued; want a pause per %d threads, every task read and none queued", pauses, read, len(q.items), paceChunk)
			case !stop && workers > 1 && (pauses < 2 || read == 0 || read+threadChunk*len(q.items) != threads):
				// The tasks past the first chunk are queued for the
				// workers; this scanner reads the rest itself.
				t.Errorf("%d workers, not stopped: %d pause(s), %d task(s) read, %d chunk(s) queued; want a pause per batch and the rest read", workers, pauses, read, len(q.items))
			}
		}
	}
}

// A stopped scan reads no further process of the batch in hand: the
// progress line's count is stopped when the wait ends, and the wait's
// return waits for it.
func TestScanStopsBetweenProcesses(t *testing.T) {
	t.Parallel()
	pids := []int32{100, 200, 300}
	proc, procfd := patchedTasks(t, [][2]int{{100, 100}, {200, 200}, {300, 300}})
	for _, stop := range []bool{false, true} {
		var read []int
		var st ScanStats
		ctx, cancel := context.WithCancel(context.Background())
		s := newScanner(proc, procfd, "patch_state", false, func(ts TaskState) {
			read = append(read, ts.PID)
			if stop {
				cancel()
			}
		}, &st, newWorkQueue(1))
		s.ctx = ctx
		s.scan(workItem{pids: pids})
		cancel()
		want := []int{100, 200, 300}
		if stop {
			want = want[:1]
		}
		if !slices.Equal(read, want) {
			t.Errorf("stopped at the first task: %v; read the tasks of %v, want %v", stop, read, want)
		}
	}
}

// patchedTasks makes a procfs tree on tmpfs whose tasks (PID, TID) are all
// patched, and opens its root for a scanner: the root's path and
// descriptor, closed at the test's end.
func patchedTasks(t *testing.T, tasks [][2]int) (string, int) {
	t.Helper()
	proc := filepath.Join(memDir(t), "proc")
	for _, task := range tasks {
		dir := filepath.Join(proc, strconv.Itoa(task[0]), "task", strconv.Itoa(task[1]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "patch_state"), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	procfd, err := unix.Open(proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(procfd) })
	return proc, procfd
}
