package livepatch

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// The kernel's reasons for not switching a task, as klp_try_switch_task()
// logs them (kernel/livepatch/transition.c). They are pr_debug() messages:
// a kernel prints them only when dynamic debug enables them (see
// [FS.SwitchReasonsLogged]); Debian's 6.1 and 6.12 do not by default.
const (
	// ReasonRunning: the task was running on another CPU.
	ReasonRunning = "running"
	// ReasonUnreliableStack: the kernel could not unwind the task's stack
	// reliably, so it could not check it.
	ReasonUnreliableStack = "unreliable_stack"
	// ReasonSleepingOnFunction: a function the transition changes is on
	// the task's stack.
	ReasonSleepingOnFunction = "sleeping_on_function"
)

// SwitchReason is the kernel's last logged reason for not switching one
// task.
type SwitchReason struct {
	Reason   string // ReasonRunning, ReasonUnreliableStack or ReasonSleepingOnFunction
	Comm     string
	PID      int    // the task's id (a thread id: task->pid)
	Function string // the function, for ReasonSleepingOnFunction
	// Message is the log line, as the kernel printed it.
	Message string
}

// TransitionLog is what the kernel log says about the current transition
// of a patch: the messages after the last "'<patch>': starting ...
// transition" (a reverse starts the transition anew).
type TransitionLog struct {
	// Started: the start of the transition was found. Without it the
	// whole log was read (its start may have been overwritten).
	Started bool
	// Signalled: the kernel logged "signaling remaining tasks", which it
	// does the first time it sends its fake signal to the blocking user
	// tasks and wakes the blocking kernel threads, 15 seconds into a
	// transition (Linux 5.1+; it does so again every 15 seconds, silently).
	Signalled bool
	// Reasons are the last reason logged for each task, by task id.
	Reasons map[int]SwitchReason
}

// ParseTransitionLog reads kernel log messages, one per line (what dmesg
// prints, without timestamps), and keeps what concerns the current
// transition of patch. The reasons are klp_try_switch_task's messages
// (Linux 5.16+; klp_check_stack's before):
//
//	livepatch: klp_try_switch_task: klp_e2e_busy:97 has an unreliable stack
//	livepatch: klp_try_switch_task: cat:212 is sleeping on function klp_e2e_target_read
//	livepatch: klp_try_switch_task: stress:301 is running
//
// A task name may hold spaces and colons: the id is after the last colon
// before the reason. Lines that are not livepatch's are skipped.
func ParseTransitionLog(r io.Reader, patch string) (TransitionLog, error) {
	log := TransitionLog{Reasons: map[int]SwitchReason{}}
	starting := "livepatch: '" + patch + "': starting "
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		msg, ok := strings.CutPrefix(line, "livepatch: ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(line, starting) && strings.HasSuffix(line, " transition"):
			log = TransitionLog{Started: true, Reasons: map[int]SwitchReason{}}
		case msg == "signaling remaining tasks":
			log.Signalled = true
		default:
			if sr, ok := parseSwitchReason(msg); ok {
				sr.Message = line
				log.Reasons[sr.PID] = sr
			}
		}
	}
	return log, sc.Err()
}

// parseSwitchReason parses "klp_try_switch_task: comm:pid reason".
func parseSwitchReason(msg string) (SwitchReason, bool) {
	rest, ok := strings.CutPrefix(msg, "klp_try_switch_task: ")
	if !ok {
		if rest, ok = strings.CutPrefix(msg, "klp_check_stack: "); !ok {
			return SwitchReason{}, false
		}
	}
	var sr SwitchReason
	var task string
	switch {
	case strings.HasSuffix(rest, " has an unreliable stack"):
		sr.Reason, task = ReasonUnreliableStack, strings.TrimSuffix(rest, " has an unreliable stack")
	case strings.HasSuffix(rest, " is running"):
		sr.Reason, task = ReasonRunning, strings.TrimSuffix(rest, " is running")
	default:
		i := strings.LastIndex(rest, " is sleeping on function ")
		if i < 0 {
			return SwitchReason{}, false
		}
		sr.Reason, task, sr.Function = ReasonSleepingOnFunction, rest[:i], rest[i+len(" is sleeping on function "):]
		if sr.Function == "" || strings.ContainsAny(sr.Function, " \t") {
			return SwitchReason{}, false
		}
	}
	colon := strings.LastIndexByte(task, ':')
	if colon < 0 {
		return SwitchReason{}, false
	}
	pid, err := strconv.Atoi(task[colon+1:])
	if err != nil || pid <= 0 || strconv.Itoa(pid) != task[colon+1:] {
		return SwitchReason{}, false
	}
	sr.Comm, sr.PID = task[:colon], pid
	return sr, true
}

// ParseDynamicDebug reads <debugfs>/dynamic_debug/control and reports
// whether the kernel has klp_try_switch_task's (or klp_check_stack's)
// messages (found) and whether they are printed (enabled: the flags
// include p):
//
//	kernel/livepatch/transition.c:320 [livepatch]klp_try_switch_task =_ "%s: %s:%d has an unreliable stack\012"
//
// Every site must be on for enabled to be true.
func ParseDynamicDebug(r io.Reader) (found, enabled bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	enabled = true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "kernel/livepatch/") {
			continue
		}
		fn := f[1]
		if i := strings.IndexByte(fn, ']'); i >= 0 {
			fn = fn[i+1:]
		}
		if fn != "klp_try_switch_task" && fn != "klp_check_stack" {
			continue
		}
		flags, ok := strings.CutPrefix(f[2], "=")
		if !ok {
			continue
		}
		found = true
		if !strings.Contains(flags, "p") {
			enabled = false
		}
	}
	return found, found && enabled, sc.Err()
}

// SwitchReasonsControl is the command that makes the kernel log its
// reasons (written to <debugfs>/dynamic_debug/control).
const SwitchReasonsControl = "func klp_try_switch_task +p"

// SwitchReasonsLogged reports whether the kernel logs why it cannot switch
// each task: found is false when it has no such messages to turn on (a
// kernel built without dynamic debug), enabled whether they are on. The
// control file is root's.
func (fs FS) SwitchReasonsLogged() (found, enabled bool, err error) {
	f, err := fs.k.Open(fs.DynamicDebugControl())
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	return ParseDynamicDebug(f)
}

// DynamicDebugControl is <debugfs>/dynamic_debug/control.
func (fs FS) DynamicDebugControl() string {
	return fs.k.SysPath("kernel", "debug", "dynamic_debug", "control")
}
