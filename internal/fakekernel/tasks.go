package fakekernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Task is a task (thread) in the fake /proc.
type Task struct {
	PID int // thread group id
	TID int // thread id (0 = PID, the group leader)
	// PPID is the parent's pid, shown in stat. A task added during a
	// transition inherits its parent's patch_state (klp_copy_process):
	// the group leader's for a thread, PPID's for a process.
	PPID    int
	Comm    string
	Cmdline []string // empty for kthreads
	Kthread bool     // PF_KTHREAD in stat's flags
	// Stack is the content of /proc/<pid>/task/<tid>/stack without the
	// "[<0>] " prefixes (nil = a typical stack for the kind of task).
	Stack []string
}

type task struct {
	Task
	state           int
	blockAll        bool
	blockedOn       []string
	stopped         bool // SIGSTOP: state T
	uninterruptible bool // state D
	running         bool // state R: a kernel thread that does not sleep (SetRunning)
}

// DefaultTasks returns a small, plausible task set: init, two kthreads,
// a daemon and a multi-threaded process.
func DefaultTasks() []Task {
	return []Task{
		{PID: 1, Comm: "systemd", Cmdline: []string{"/sbin/init"}},
		{PID: 2, Comm: "kthreadd", Kthread: true},
		{PID: 15, PPID: 2, Comm: "kworker/0:1", Kthread: true},
		{PID: 100, PPID: 1, Comm: "sshd", Cmdline: []string{"/usr/sbin/sshd", "-D"}},
		{PID: 200, PPID: 1, Comm: "app", Cmdline: []string{"/usr/bin/app", "--serve"}},
		{PID: 200, TID: 201, PPID: 1, Comm: "app-worker", Cmdline: []string{"/usr/bin/app", "--serve"}},
		{PID: 200, TID: 202, PPID: 1, Comm: "app-worker", Cmdline: []string{"/usr/bin/app", "--serve"}},
	}
}

// AddTask adds a task (a new process or thread) to /proc. During a
// transition it starts in its parent's patch_state, like a forked child.
func (k *Kernel) AddTask(t Task) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addTask(t)
}

func (k *Kernel) addTask(t Task) {
	if t.TID == 0 {
		t.TID = t.PID
	}
	if old := k.taskMap[t.TID]; old != nil {
		k.exitTask(t.TID)
	}
	nt := &task{Task: t, state: stateIdle}
	if k.trans != nil {
		nt.state = 1 - k.target
		parent := t.PPID
		if t.TID != t.PID {
			parent = t.PID
		}
		if pt := k.taskMap[parent]; pt != nil {
			nt.state = pt.state
		}
	}
	k.tasks = append(k.tasks, nt)
	slices.SortFunc(k.tasks, func(a, b *task) int {
		if a.PID != b.PID {
			return a.PID - b.PID
		}
		return a.TID - b.TID
	})
	k.taskMap[t.TID] = nt
	k.writeTask(nt)
}

// ExitTask removes a task; a group leader takes its threads with it.
func (k *Kernel) ExitTask(tid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.exitTask(tid)
}

func (k *Kernel) exitTask(tid int) {
	t := k.taskMap[tid]
	if t == nil {
		return
	}
	var gone []*task
	dir := k.taskDir(t)
	if t.TID == t.PID {
		dir = filepath.Join(k.proc, strconv.Itoa(t.PID))
		for _, x := range k.tasks {
			if x.PID == t.PID {
				gone = append(gone, x)
			}
		}
	} else {
		gone = []*task{t}
	}
	os.RemoveAll(dir)
	for _, g := range gone {
		delete(k.taskMap, g.TID)
		k.tasks = slices.DeleteFunc(k.tasks, func(x *task) bool { return x == g })
	}
	k.forgetUnder(dir)
}

// BlockTask keeps a task from switching: with no functions, from every
// transition; otherwise from transitions whose patch (nops included)
// changes one of funcs in an object that is patched, as when the task
// sleeps inside that function (klp_check_stack finds it on the stack).
// The functions are shown at the top of the task's stack file.
func (k *Kernel) BlockTask(tid int, funcs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.taskMap[tid]
	if t == nil {
		return
	}
	t.blockAll = len(funcs) == 0
	t.blockedOn = append([]string(nil), funcs...)
	k.writeTask(t)
}

// UnblockTask releases a blocked task; it switches at the next Tick.
func (k *Kernel) UnblockTask(tid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.taskMap[tid]
	if t == nil {
		return
	}
	t.blockAll, t.blockedOn = false, nil
	k.writeTask(t)
}

// SwitchTask switches one task to the transition's target, as when it
// returns to user space, without completing the transition. It reports
// false if there is no transition or the task is blocked or unknown.
func (k *Kernel) SwitchTask(tid int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.taskMap[tid]
	if t == nil || k.trans == nil || k.blocks(t) {
		return false
	}
	k.setState(t, k.target)
	return true
}

// PatchState returns a task's patch_state (-1, 0, 1), or -2 if unknown.
func (k *Kernel) PatchState(tid int) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t := k.taskMap[tid]; t != nil {
		return t.state
	}
	return -2
}

// HoldIdle models an idle task (swapper/N, not in /proc) that has not
// switched: while set, transitions do not complete even when every
// visible task has switched (as seen on 2-CPU guests, where transition=1
// shows with no visible blocker). force overrides it for the transition.
func (k *Kernel) HoldIdle(hold bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.holdIdle = hold
}

// Tick is one run of the kernel's transition work (klp_transition_work,
// every second in a real kernel): pending asynchronous frees run, then
// every unblocked task switches and, if none is left, the transition
// completes. A completed disable or replace frees patches asynchronously:
// their directories vanish and module references drop at the next Tick
// (or Flush).
func (k *Kernel) Tick() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flush()
	k.tryComplete()
	k.sync()
}

// Settle ticks until no transition is in progress and no work is pending,
// at most n times; it reports whether it got there.
func (k *Kernel) Settle(n int) bool {
	for i := 0; i < n; i++ {
		k.Tick()
		k.mu.Lock()
		idle := k.trans == nil && len(k.work) == 0
		k.mu.Unlock()
		if idle {
			return true
		}
	}
	return false
}

func (k *Kernel) setState(t *task, state int) {
	t.state = state
	k.put(filepath.Join(k.taskDir(t), "patch_state"), fileSpec{content: fmt.Sprintf("%d\n", state), mode: 0o400})
	if t.TID == t.PID {
		k.put(filepath.Join(k.proc, strconv.Itoa(t.PID), "patch_state"), fileSpec{content: fmt.Sprintf("%d\n", state), mode: 0o400})
	}
}

func (k *Kernel) taskDir(t *task) string {
	return filepath.Join(k.proc, strconv.Itoa(t.PID), "task", strconv.Itoa(t.TID))
}

// writeTask renders /proc/<pid>/task/<tid>/ (and /proc/<pid>/ for a
// group leader).
func (k *Kernel) writeTask(t *task) {
	dirs := []string{k.taskDir(t)}
	if t.TID == t.PID {
		dirs = append(dirs, filepath.Join(k.proc, strconv.Itoa(t.PID)))
	}
	cmdline := ""
	if len(t.Cmdline) > 0 {
		cmdline = strings.Join(t.Cmdline, "\x00") + "\x00"
	}
	var flags uint64 = 0x400100 // PF_RANDOMIZE | PF_FORKNOEXEC-ish user task
	if t.Kthread {
		flags = 0x208040 // PF_KTHREAD | PF_NOFREEZE | PF_WQ_WORKER-ish
	}
	state := "S"
	switch {
	case t.uninterruptible:
		state = "D"
	case t.stopped:
		state = "T"
	case t.running:
		state = "R"
	}
	stat := fmt.Sprintf("%d (%s) %s %d %d %d 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		t.TID, t.Comm, state, t.PPID, t.PID, t.PID, flags)
	var stack strings.Builder
	for _, f := range t.blockedOn {
		// A program that calls the function (fexit, fmod_ret, LSM)
		// leaves its trampoline where the function's frame was: the
		// stack file skips the scheduler's functions, and so the
		// traced one (seen on 6.1 and 6.12).
		if tramp, ok := k.onStack(f); ok {
			fmt.Fprintf(&stack, "[<0>] %s+0x2e/0x1000\n", tramp)
			continue
		}
		fmt.Fprintf(&stack, "[<0>] %s+0x1d/0x60\n", f)
	}
	frames := t.Stack
	if t.running {
		frames = []string{} // a running task's stack cannot be read
	}
	if frames == nil {
		if t.Kthread {
			frames = []string{"worker_thread+0xbe/0x3c0", "kthread+0xe5/0x120", "ret_from_fork+0x1f/0x30"}
		} else {
			frames = []string{"do_epoll_wait+0x5b1/0x610", "__x64_sys_epoll_wait+0x6f/0x110",
				"do_syscall_64+0x55/0xb0", "entry_SYSCALL_64_after_hwframe+0x6e/0xd8"}
		}
	}
	for _, f := range frames {
		fmt.Fprintf(&stack, "[<0>] %s\n", f)
	}
	for _, d := range dirs {
		os.MkdirAll(d, 0o755)
		k.put(filepath.Join(d, "comm"), fileSpec{content: t.Comm + "\n", mode: 0o644})
		k.put(filepath.Join(d, "cmdline"), fileSpec{content: cmdline, mode: 0o444})
		k.put(filepath.Join(d, "stat"), fileSpec{content: stat, mode: 0o444})
		k.put(filepath.Join(d, "stack"), fileSpec{content: stack.String(), mode: 0o400})
		if !k.opts.NoLivepatch {
			k.put(filepath.Join(d, "patch_state"), fileSpec{content: fmt.Sprintf("%d\n", t.state), mode: 0o400})
		}
	}
}

// forgetUnder drops cache entries below dir.
func (k *Kernel) forgetUnder(dir string) {
	for p := range k.written {
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			delete(k.written, p)
		}
	}
}
