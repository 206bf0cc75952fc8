package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The test modules (see e2e/README.md): klp_e2e_target's kthread sleeps in
// the function that klp_e2e_target_patch replaces while block_kthread is
// 1, which holds the patch's transition open.
const (
	targetModule  = "klp_e2e_target"
	patchModule   = "klp_e2e_target_patch"
	targetParams  = "/sys/module/" + targetModule + "/parameters/"
	patchDir      = "/sys/kernel/livepatch/" + patchModule
	kthreadComm   = "klp_e2e_busy"
	completionMsg = "'" + patchModule + "': patching complete"
)

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func readInt(path string) (int, error) {
	s, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// writeFile writes a pseudo-file with one write, as echo does.
func writeFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// insmod loads a test module with finit_module.
func insmod(name string) error {
	f, err := os.Open(filepath.Join(moduleDir, name+".ko"))
	if err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	return nil
}

// rmmod removes a module once its reference count dropped.
func rmmod(name string) error {
	waitFor(30*time.Second, func() bool {
		n, err := readInt("/sys/module/" + name + "/refcnt")
		return err == nil && n == 0
	})
	var err error
	for range 50 {
		if err = unix.DeleteModule(name, unix.O_NONBLOCK); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w", name, err)
}

// block parks the kthread in the patched function.
func block() error {
	if err := writeFile(targetParams+"block_kthread", "1"); err != nil {
		return err
	}
	if !waitFor(10*time.Second, func() bool { n, _ := readInt(targetParams + "kthread_waiting"); return n == 1 }) {
		return errors.New("block the kthread: it is not in klp_e2e_target_work() after 10s")
	}
	return nil
}

// release lets the kthread leave the patched function.
func release() error { return writeFile(targetParams+"block_kthread", "0") }

// loadBlocked loads the patch while the kthread is parked: the transition
// stays open until release.
func loadBlocked() error {
	if err := block(); err != nil {
		return err
	}
	if err := insmod(patchModule); err != nil {
		return err
	}
	if tr, err := readInt(patchDir + "/transition"); err != nil || tr != 1 {
		return fmt.Errorf("load %s: transition is %d (%v), want 1 while the kthread is parked", patchModule, tr, err)
	}
	return nil
}

// unload releases the kthread, lets the transition complete, disables the
// patch, waits for the kernel to free it and removes its module. The
// kthread is parked again afterwards, ready for the next loadBlocked.
func unload() error {
	if err := release(); err != nil {
		return err
	}
	if exists(patchDir) {
		// Disabling is refused (EBUSY) while the transition runs.
		ok := waitFor(2*time.Minute, func() bool {
			if !exists(patchDir) {
				return true
			}
			if tr, _ := readInt(patchDir + "/transition"); tr != 0 {
				return false
			}
			if en, _ := readInt(patchDir + "/enabled"); en == 1 {
				_ = writeFile(patchDir+"/enabled", "0")
			}
			return false
		})
		if !ok {
			return fmt.Errorf("unload %s: the patch is still there after 2 minutes", patchModule)
		}
	}
	if exists("/sys/module/" + patchModule) {
		if err := rmmod(patchModule); err != nil {
			return err
		}
	}
	return block()
}

// kthreadTID finds the kthread that holds the transition.
func kthreadTID() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, _ := readTrim("/proc/" + e.Name() + "/comm"); c == kthreadComm {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("find kthread %s: not in /proc", kthreadComm)
}

// countTasks counts the tasks in /proc.
func countTasks() int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/task")
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		n += len(names)
	}
	return n
}

// monoNow reads CLOCK_MONOTONIC in nanoseconds.
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// runCount returns how many times the threads of a process were put on a
// CPU: the sum of the second field after the run and wait times of
// /proc/<pid>/task/*/schedstat. Threads that ended are not counted.
func runCount(pid int) (int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tids {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		runs, err := parseSchedstatRuns(string(b))
		if err != nil {
			return 0, err
		}
		n += runs
	}
	return n, nil
}

// parseSchedstatRuns returns the third field of a schedstat line ("run
// time, wait time, timeslices run").
func parseSchedstatRuns(line string) (int64, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return 0, fmt.Errorf("parse schedstat %q: want 3 fields", line)
	}
	return strconv.ParseInt(f[2], 10, 64)
}

// cpuTicks returns the user and system time of a process and of its
// waited-for children, in clock ticks, from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseStatTicks(f)
}

// parseStatTicks reads utime, stime, cutime and cstime (fields 14 to 17)
// of a /proc/<pid>/stat line and returns their sum. The command name
// (field 2) may hold spaces and parentheses, so fields are counted from
// its last ")".
func parseStatTicks(r io.Reader) (int64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parse stat: no command name")
	}
	// After ")": field 3 (state) is the first.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("parse stat: %d fields after the command name, want at least 15", len(f))
	}
	var sum int64
	for _, s := range f[11:15] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("parse stat: time field %q", s)
		}
		sum += v
	}
	return sum, nil
}

// kmsgRecord is one record of /dev/kmsg.
type kmsgRecord struct {
	Seq  uint64
	Usec int64 // the kernel log's clock (local_clock), in microseconds
	Msg  string
}

// parseKmsgRecord parses "<prio>,<seq>,<usec>,<flags>[,...];<message>\n"
// followed by optional continuation lines (" KEY=value"), which are
// dropped.
func parseKmsgRecord(r io.Reader) (kmsgRecord, error) {
	br := bufio.NewReader(io.LimitReader(r, 64*1024))
	line, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return kmsgRecord{}, fmt.Errorf("parse kmsg record: %w", err)
	}
	head, msg, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ";")
	if !ok {
		return kmsgRecord{}, errors.New("parse kmsg record: no ';'")
	}
	f := strings.Split(head, ",")
	if len(f) < 4 {
		return kmsgRecord{}, fmt.Errorf("parse kmsg record: %d prefix fields, want 4", len(f))
	}
	seq, err1 := strconv.ParseUint(f[1], 10, 64)
	usec, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || usec < 0 {
		return kmsgRecord{}, fmt.Errorf("parse kmsg record: bad sequence %q or timestamp %q", f[1], f[2])
	}
	return kmsgRecord{Seq: seq, Usec: usec, Msg: msg}, nil
}

// kmsgReader reads the kernel log from the moment it was opened.
type kmsgReader struct{ fd int }

func openKmsg() (*kmsgReader, error) {
	// Raw descriptors: an *os.File would give the non-blocking descriptor
	// to Go's poller, which waits for more records instead of returning
	// EAGAIN at the end.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seek /dev/kmsg: %w", err)
	}
	return &kmsgReader{fd: fd}, nil
}

func (k *kmsgReader) Close() { unix.Close(k.fd) }

// records returns the records logged since the last call.
func (k *kmsgReader) records() []kmsgRecord {
	var out []kmsgRecord
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(k.fd, buf)
		if err == unix.EPIPE {
			continue // overwritten while we read: go on with the next
		}
		if err != nil || n <= 0 {
			return out
		}
		if rec, err := parseKmsgRecord(bytes.NewReader(buf[:n])); err == nil {
			out = append(out, rec)
		}
	}
}

// clockOffset relates the kernel log's clock to CLOCK_MONOTONIC: it writes
// a record between two readings of the monotonic clock and returns
// monotonic minus log time, in nanoseconds, and half the interval as the
// error bound (plus the log's microsecond rounding).
func clockOffset() (offset, bound int64, err error) {
	k, err := openKmsg()
	if err != nil {
		return 0, 0, err
	}
	defer k.Close()
	w, err := unix.Open("/dev/kmsg", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer unix.Close(w)
	tag := fmt.Sprintf("klp-bench clock %d", monoNow())
	t1 := monoNow()
	// The newline ends the record: one without it stays open for a
	// continuation, and readers do not see it yet.
	_, werr := unix.Write(w, []byte("<7>"+tag+"\n"))
	t2 := monoNow()
	if werr != nil {
		return 0, 0, fmt.Errorf("write /dev/kmsg: %w", werr)
	}
	for _, r := range k.records() {
		if r.Msg == tag {
			return (t1+t2)/2 - r.Usec*1000, (t2-t1)/2 + 1000, nil
		}
	}
	return 0, 0, errors.New("relate the clocks: our record is not in /dev/kmsg")
}

// cgroupRoot is where the guest mounts cgroup v2; waiterCgroup is the
// cgroup each waiter runs in, alone, with its children.
const (
	cgroupRoot   = "/sys/fs/cgroup"
	waiterCgroup = cgroupRoot + "/klp-bench-waiter"
)

// mountCgroup mounts cgroup v2 and creates the waiters' cgroup; it returns
// the cgroup's directory, open, for clone3's CLONE_INTO_CGROUP.
func mountCgroup() (*os.File, error) {
	if err := unix.Mount("cgroup2", cgroupRoot, "cgroup2", 0, ""); err != nil && err != unix.EBUSY {
		return nil, fmt.Errorf("mount cgroup2: %w", err)
	}
	if err := os.Mkdir(waiterCgroup, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	f, err := os.Open(waiterCgroup)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return f, nil
}

// cgroupUsage returns the CPU time of every task that ran in the cgroup
// dir (cpu.stat's usage_usec): the scheduler's runtime, counted in
// nanoseconds as the tasks run, not sampled at clock ticks.
func cgroupUsage(dir string) (time.Duration, error) {
	f, err := os.Open(dir + "/cpu.stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCPUStatUsage(f)
}

// parseCPUStatUsage reads usage_usec of a cgroup v2 cpu.stat file.
func parseCPUStatUsage(r io.Reader) (time.Duration, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, fmt.Errorf("read cpu.stat: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 || n > math.MaxInt64/int64(time.Microsecond) {
				return 0, fmt.Errorf("parse cpu.stat: bad usage_usec %q", v)
			}
			return time.Duration(n) * time.Microsecond, nil
		}
	}
	return 0, errors.New("parse cpu.stat: no usage_usec")
}
