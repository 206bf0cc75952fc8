package livepatch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/klp-project/klp/kernel"
)

// pfKthread is PF_KTHREAD from include/linux/sched.h, the flag in
// /proc/<pid>/stat that marks a kernel thread.
const pfKthread = 0x00200000

// maxCmdline caps /proc/<pid>/cmdline reads; a command line longer than this
// is cut, which is enough to recognise the process.
const maxCmdline = 16 << 10

// Task describes one thread, as procfs shows it.
type Task struct {
	PID int // /proc/<PID>
	TID int // /proc/<PID>/task/<TID>
	// Comm is the thread's name. /proc/<PID>/task/<TID>/comm
	Comm string
	// Cmdline is the process's command line with NULs turned into spaces,
	// or "[comm]" for a kernel thread, as ps shows them.
	// /proc/<PID>/cmdline
	Cmdline string
	// KernelThread is true for kernel threads (PF_KTHREAD), which signals
	// cannot move through a transition.
	KernelThread bool
	// State is the scheduler state letter: R, S, D, T, Z, I...
	// /proc/<PID>/task/<TID>/stat
	State string
	// PPID and PGRP are the parent and process group ids, from stat.
	PPID, PGRP int
}

// Task reads what procfs says about a thread. A task that has exited is
// reported with an error wrapping [os.ErrNotExist].
func (fs FS) Task(pid, tid int) (Task, error) {
	t := Task{PID: pid, TID: tid}
	dir := fs.ProcPath(strconv.Itoa(pid), "task", strconv.Itoa(tid))
	stat, err := fs.k.ReadBytes(dir+"/stat", kernel.MaxAttrSize)
	if err != nil {
		return t, fmt.Errorf("read task %d: %w", tid, err)
	}
	st, err := parseStat(stat)
	if err != nil {
		return t, fmt.Errorf("read task %d: %s/stat: %w", tid, dir, err)
	}
	t.State, t.PPID, t.PGRP, t.KernelThread = st.state, st.ppid, st.pgrp, st.flags&pfKthread != 0
	// comm in stat is cut at 15 bytes like the comm file, but the comm file
	// is the documented source and has no parentheses to strip.
	if comm, err := fs.k.ReadString(dir + "/comm"); err == nil {
		t.Comm = comm
	} else {
		t.Comm = st.comm
	}
	cmd, err := fs.k.ReadPrefix(fs.ProcPath(strconv.Itoa(pid), "cmdline"), maxCmdline)
	if err != nil {
		// cmdline is world-readable; failing to read it means the task
		// exited. Fall back to the name rather than losing the task.
		cmd = nil
	}
	t.Cmdline = parseCmdline(cmd)
	if t.Cmdline == "" {
		t.Cmdline = "[" + t.Comm + "]"
	}
	return t, nil
}

// TaskStack returns the kernel stack of a thread, one frame per line, as
// /proc/<pid>/task/<tid>/stack shows it ("[<0>] func+0x1a/0x40"). Reading it
// needs CAP_SYS_ADMIN (since about 4.20): other callers get an error
// wrapping [os.ErrPermission]. A kernel without CONFIG_STACKTRACE has no
// stack file: that is [ErrStackUnavailable].
func (fs FS) TaskStack(pid, tid int) ([]string, error) {
	path := fs.ProcPath(strconv.Itoa(pid), "task", strconv.Itoa(tid), "stack")
	b, err := fs.k.ReadBytes(path, kernel.MaxAttrSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && fs.k.Exists(fs.ProcPath(strconv.Itoa(pid), "task", strconv.Itoa(tid))) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrStackUnavailable, path)
		}
		return nil, err
	}
	return parseStack(b), nil
}

func parseStack(b []byte) []string {
	// Not nil: an empty stack (a running task) was read, unlike one that
	// was not asked for.
	frames := []string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			frames = append(frames, line)
		}
	}
	return frames
}

// StackFunction returns the function name of a stack frame line:
// "[<0>] msleep+0x2d/0x40 [mod]" gives "msleep".
func StackFunction(frame string) string {
	f := frame
	if i := strings.Index(f, "] "); i >= 0 && strings.HasPrefix(f, "[<") {
		f = f[i+2:]
	}
	if i := strings.IndexAny(f, "+ "); i >= 0 {
		f = f[:i]
	}
	return f
}

func parseCmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

type statInfo struct {
	comm       string
	state      string
	ppid, pgrp int
	flags      uint64
}

// parseStat parses /proc/<pid>/stat. The comm field may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStat(b []byte) (statInfo, error) {
	s := string(bytes.TrimSpace(b))
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return statInfo{}, fmt.Errorf("%w: no (comm) field", ErrParse)
	}
	st := statInfo{comm: s[open+1 : close]}
	f := strings.Fields(s[close+1:])
	// After comm: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9).
	if len(f) < 7 {
		return statInfo{}, fmt.Errorf("%w: %d fields after comm, want at least 7", ErrParse, len(f))
	}
	st.state = f[0]
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return statInfo{}, fmt.Errorf("%w: ppid %q", ErrParse, f[1])
	}
	if st.pgrp, err = strconv.Atoi(f[2]); err != nil {
		return statInfo{}, fmt.Errorf("%w: pgrp %q", ErrParse, f[2])
	}
	if st.flags, err = strconv.ParseUint(f[6], 10, 64); err != nil {
		return statInfo{}, fmt.Errorf("%w: flags %q", ErrParse, f[6])
	}
	return st, nil
}
