// Package benchdata holds what klp's real-kernel benchmark (e2e/bench)
// measures and reports: the samples that the guest prints on its serial
// console, their summary (minimum, median, maximum), the ratios that the
// performance targets are stated in, and the tables of docs/performance.md.
//
// The guest half (e2e/bench/guest) prints one console line per record,
//
//	KLPBENCH env {...}      the guest's environment (GuestEnv)
//	KLPBENCH sample {...}   one measurement (Sample)
//	KLPBENCH note <text>    something worth knowing (a skipped measure)
//	KLPBENCH-DONE           the last line: without it the guest crashed
//
// and the host half (e2e/bench) parses them with [ParseConsole].
package benchdata

// Kinds of measurement.
const (
	KindScan = "scan" // one scan of every task: wall time, CPU, memory
	KindWait = "wait" // one stalled transition: latency, CPU per second, memory
)

// The commands measured. Scans list the tasks that block the transition;
// waiters return when it completes.
const (
	CmdKlpBlocking     = "klp blocking"
	CmdKlpBlockingJSON = "klp blocking --json"
	CmdCScan           = "C scanner"
	CmdBash            = "bash loop"
	CmdKpatch          = "kpatch (fork per task)"
	CmdKlpMetrics      = "klp metrics"
	CmdKlpWait         = "klp wait"
	CmdKlpWaitTTY      = "klp wait (terminal)"
	CmdPoll            = "1 s poll loop"
	CmdKmsgWait        = "C log reader (floor)"
)

// ScanCommands and WaitCommands are the commands in table order.
var (
	ScanCommands = []string{CmdKlpBlocking, CmdKlpBlockingJSON, CmdKlpMetrics, CmdCScan, CmdBash, CmdKpatch}
	WaitCommands = []string{CmdKlpWait, CmdKlpWaitTTY, CmdPoll, CmdKmsgWait}
)

// Sample is one run of one command.
type Sample struct {
	Threads int    `json:"threads"` // sleeping threads started for the measure
	Tasks   int    `json:"tasks"`   // tasks in /proc while it ran
	Command string `json:"command"`
	Kind    string `json:"kind"`
	Rep     int    `json:"rep"`
	// Wall is the command's run time: a scan's duration, a waiter's whole
	// life (start to return).
	Wall float64 `json:"wall_s"`
	// CPU is the user and system time of the command and its children
	// (wait4's rusage).
	CPU float64 `json:"cpu_s"`
	// MaxRSS is the peak resident set of the command or of its largest
	// child, in KiB (wait4's rusage).
	MaxRSS int64 `json:"max_rss_kib"`
	// Latency is the time from the kernel's completion of the transition
	// (the timestamp of its "patching complete" log record) to the
	// waiter's return; LatencyErr bounds the error of relating the kernel
	// log's clock to CLOCK_MONOTONIC.
	Latency    *float64 `json:"latency_s,omitempty"`
	LatencyErr float64  `json:"latency_err_s,omitempty"`
	// CPUPerSec is the CPU time the waiter (and its children) used per
	// second of a stalled transition, measured over Window seconds: the
	// usage_usec of the cgroup the waiter runs in alone (the scheduler's
	// runtime in ns, children included), or in results from before that
	// (no CPUPerSecTicks), /proc/<pid>/stat's clock ticks.
	CPUPerSec *float64 `json:"cpu_per_s,omitempty"`
	// CPUPerSecTicks is the same from /proc/<pid>/stat fields 14 to 17
	// (utime, stime, cutime, cstime: 10 ms clock ticks, charged to
	// whoever runs when the tick fires), over the same window.
	CPUPerSecTicks *float64 `json:"cpu_per_s_ticks,omitempty"`
	Window         float64  `json:"window_s,omitempty"`
	// RunsPerSec is how many times per second of the same window the
	// waiter's threads were put on a CPU (the run counts of
	// /proc/<pid>/task/*/schedstat): whether a waiter's CPU comes from
	// waking often or from costly wake-ups.
	RunsPerSec *float64 `json:"runs_per_s,omitempty"`
	// Error says why the sample does not count (wrong output, a failed
	// command, a waiter that did not return).
	Error string `json:"error,omitempty"`
}

// GuestEnv is what the guest says about itself.
type GuestEnv struct {
	Kernel      string  `json:"kernel"`
	CPUs        int     `json:"cpus"`
	MemTotalKiB int64   `json:"mem_total_kib"`
	ThreadsMax  int     `json:"threads_max"`
	PIDMax      int     `json:"pid_max"`
	MaxMapCount int     `json:"max_map_count"`
	Klp         string  `json:"klp_version"`
	Reps        int     `json:"reps"`
	WaitReps    int     `json:"wait_reps"`
	Stall       float64 `json:"stall_s"`
	// ThreadStackKiB is the stack size of the sleeping threads.
	ThreadStackKiB int `json:"thread_stack_kib"`
	// Clocksource is the kernel's clock source: the latency relates the
	// kernel log's clock to CLOCK_MONOTONIC, which it drives.
	Clocksource string `json:"clocksource"`
	// THP is the guest's transparent huge page setting, as the kernel
	// shows it ("always [madvise] never").
	THP  string `json:"transparent_hugepage"`
	Bash string `json:"bash_version"`
}
