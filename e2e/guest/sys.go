package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel side of every comparison: direct reads of /sys and /proc.

const lpRoot = "/sys/kernel/livepatch"

// readTrim reads a pseudo-file and trims the trailing newline.
func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// readInt reads a pseudo-file holding one decimal integer.
func readInt(path string) (int, error) {
	s, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// optInt reads an optional attribute: nil when the file does not exist.
func optInt(path string) (*int, error) {
	v, err := readInt(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// writeFile writes a pseudo-file with a single write, the way `echo >` does,
// and returns the errno of the open or the write.
func writeFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(data)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// sysPatch is a patch as /sys/kernel/livepatch/<name> shows it.
type sysPatch struct {
	name       string
	enabled    int
	transition int
	replace    *int // nil: attribute absent (before 6.11)
	replaceSet *int // nil: attribute absent (every released kernel: a proposal)
	stackOrder *int // nil: attribute absent (before 6.14)
	hasForce   bool
	hasSignal  bool
	objects    []sysObject
}

type sysObject struct {
	name    string
	patched *int     // nil: attribute absent (before 6.1)
	funcs   []string // directory names, "<function>,<sympos>"
}

func readSysPatches() ([]sysPatch, error) {
	entries, err := os.ReadDir(lpRoot)
	if err != nil {
		return nil, err
	}
	var ps []sysPatch
	for _, e := range entries {
		p, err := readSysPatch(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // removed while we read it
		}
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// expectEnabledSettled checks that the kernel shows patch name enabled and
// out of transition.
func (r *runner) expectEnabledSettled(check, name, why string) bool {
	p, err := readSysPatch(name)
	return r.expect(check, err == nil && p.enabled == 1 && p.transition == 0,
		"%s: %s enabled %d, transition %d (%v)", why, name, p.enabled, p.transition, err)
}

func readSysPatch(name string) (sysPatch, error) {
	dir := filepath.Join(lpRoot, name)
	p := sysPatch{name: name}
	var err error
	if p.enabled, err = readInt(filepath.Join(dir, "enabled")); err != nil {
		return p, err
	}
	if p.transition, err = readInt(filepath.Join(dir, "transition")); err != nil {
		return p, err
	}
	if p.replace, err = optInt(filepath.Join(dir, "replace")); err != nil {
		return p, err
	}
	if p.replaceSet, err = optInt(filepath.Join(dir, "replace_set")); err != nil {
		return p, err
	}
	if p.stackOrder, err = optInt(filepath.Join(dir, "stack_order")); err != nil {
		return p, err
	}
	p.hasForce = exists(filepath.Join(dir, "force"))
	p.hasSignal = exists(filepath.Join(dir, "signal"))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return p, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		o := sysObject{name: e.Name()}
		odir := filepath.Join(dir, e.Name())
		if o.patched, err = optInt(filepath.Join(odir, "patched")); err != nil {
			return p, err
		}
		fes, err := os.ReadDir(odir)
		if err != nil {
			return p, err
		}
		for _, f := range fes {
			if f.IsDir() {
				o.funcs = append(o.funcs, f.Name())
			}
		}
		p.objects = append(p.objects, o)
	}
	return p, nil
}

func sysPatchNames() []string {
	entries, _ := os.ReadDir(lpRoot)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// kernelTransition returns the patch in transition and its target state
// (1 patching, 0 unpatching), or "" when none is.
func kernelTransition() (string, int) {
	for _, n := range sysPatchNames() {
		if t, err := readInt(filepath.Join(lpRoot, n, "transition")); err == nil && t == 1 {
			en, _ := readInt(filepath.Join(lpRoot, n, "enabled"))
			return n, en
		}
	}
	return "", -1
}

// taskID names one thread.
type taskID struct{ pid, tid int }

// allTasks lists every thread in /proc.
func allTasks() []taskID {
	var ids []taskID
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		tasks, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "task"))
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				ids = append(ids, taskID{pid, tid})
			}
		}
	}
	return ids
}

func taskPath(t taskID, file string) string {
	return fmt.Sprintf("/proc/%d/task/%d/%s", t.pid, t.tid, file)
}

// patchStates reads every task's patch_state (as root: all are readable).
func patchStates() map[taskID]int {
	m := map[taskID]int{}
	for _, t := range allTasks() {
		if v, err := readInt(taskPath(t, "patch_state")); err == nil {
			m[t] = v
		}
	}
	return m
}

// kernelBlocking is the reference for klp blocking: the tasks whose
// patch_state is neither -1 nor the target of the patch in transition.
func kernelBlocking() map[int]taskID {
	name, target := kernelTransition()
	m := map[int]taskID{}
	if name == "" {
		return m
	}
	for t, s := range patchStates() {
		if s >= 0 && s != target {
			m[t.tid] = t
		}
	}
	return m
}

// comm returns a task's command name.
func comm(t taskID) string {
	s, _ := readTrim(taskPath(t, "comm"))
	return s
}

// cmdline returns /proc/<pid>/cmdline with NULs turned into spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// taskState is the one-letter state from /proc/<pid>/task/<tid>/stat.
func taskState(t taskID) string {
	b, err := os.ReadFile(taskPath(t, "stat"))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// findTask returns the first task whose comm is name.
func findTask(name string) (taskID, bool) {
	for _, t := range allTasks() {
		if comm(t) == name {
			return t, true
		}
	}
	return taskID{}, false
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
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

// moduleLoaded reports whether /proc/modules lists name, and its refcount
// column.
func moduleLoaded(name string) (bool, int) {
	b, _ := os.ReadFile("/proc/modules")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == name {
			n, _ := strconv.Atoi(f[2])
			return true, n
		}
	}
	return false, 0
}

// loadedE2EModules lists the loaded test modules: klp_e2e_* and the
// klp-build style livepatch_e2e_*.
func loadedE2EModules() []string {
	b, _ := os.ReadFile("/proc/modules")
	var mods []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (strings.HasPrefix(f[0], "klp_e2e_") || strings.HasPrefix(f[0], "livepatch_e2e_")) {
			mods = append(mods, f[0])
		}
	}
	return mods
}

// kmsgRecord is one record of the kernel log.
type kmsgRecord struct {
	seq  uint64
	usec int64 // the log's clock: microseconds since boot
	msg  string
}

// kmsgRecords reads the kernel log records after sequence number after
// (every record held when after is 0); it also returns the last sequence
// number seen.
func kmsgRecords(after uint64) ([]kmsgRecord, uint64) {
	last := after
	// Raw syscalls: an *os.File would hand the non-blocking descriptor to
	// Go's poller, which waits for more records instead of returning EAGAIN.
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, last
	}
	defer syscall.Close(fd)
	var recs []kmsgRecord
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EPIPE {
			continue // records overwritten while reading; go on
		}
		if err != nil || n <= 0 {
			break
		}
		rec := string(buf[:n])
		semi := strings.IndexByte(rec, ';')
		if semi < 0 {
			continue
		}
		fields := strings.Split(rec[:semi], ",")
		if len(fields) < 3 {
			continue
		}
		seq, _ := strconv.ParseUint(fields[1], 10, 64)
		usec, _ := strconv.ParseInt(fields[2], 10, 64)
		if seq > last {
			last = seq
		}
		if seq <= after && after != 0 {
			continue
		}
		msg := rec[semi+1:]
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		recs = append(recs, kmsgRecord{seq: seq, usec: usec, msg: msg})
	}
	return recs, last
}

// kmsg reads the kernel log records after sequence number after; it returns
// the message texts and the last sequence number seen.
func kmsg(after uint64) ([]string, uint64) {
	recs, last := kmsgRecords(after)
	lines := make([]string, len(recs))
	for i, r := range recs {
		lines[i] = r.msg
	}
	return lines, last
}

func kmsgLastSeq() uint64 {
	_, last := kmsg(0)
	return last
}

func kmsgSince(seq uint64) []string {
	lines, _ := kmsg(seq)
	return lines
}

// kmsgHas reports whether a kernel log line after seq contains every one of
// the substrings.
func kmsgHas(seq uint64, subs ...string) bool {
	for _, l := range kmsgSince(seq) {
		ok := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
