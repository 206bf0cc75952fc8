package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The wait's latency is the time from the kernel's completion record to
// the waiter's return. klp_bench_trace=1 records where that time goes:
// ftrace's scheduler events and the system calls that end a wait, on the
// clock of the log's timestamps (ftrace's "global" clock reads
// local_clock(), as printk does), printed to the console after each wait
// as "trace" lines relative to the record (e2e/bench/README.md).

const tracefs = "/sys/kernel/tracing"

// traceEvents are the events recorded: who is woken and put on the CPU,
// the waiter's reads (the log's record arriving, the attributes after it),
// its writes (the outcome), its exit, and measure's wait4.
var traceEvents = []string{
	"sched/sched_wakeup", "sched/sched_switch", "sched/sched_process_exit",
	"syscalls/sys_exit_read", "syscalls/sys_exit_write", "syscalls/sys_enter_exit_group",
	"syscalls/sys_exit_wait4", "syscalls/sys_exit_openat", "syscalls/sys_exit_epoll_pwait",
}

// traceFilter keeps the system calls of the waiters and of measure.
const traceFilter = `comm == "klp" || comm == "kmsgwait" || comm == "measure" || comm == "bash" || comm == "sleep" || comm == "cat"`

// startTrace clears the trace buffer and turns the events on.
func startTrace() error {
	if err := writeFile(filepath.Join(tracefs, "tracing_on"), "0"); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	// Opened for writing with O_TRUNC, the trace file empties the buffer.
	f, err := os.OpenFile(filepath.Join(tracefs, "trace"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	f.Close()
	for _, set := range []struct{ file, value string }{
		{"trace_clock", "global"}, {"buffer_size_kb", "8192"},
	} {
		if err := writeFile(filepath.Join(tracefs, set.file), set.value); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
	}
	for _, e := range traceEvents {
		dir := filepath.Join(tracefs, "events", e)
		if strings.HasPrefix(e, "syscalls/") {
			if err := writeFile(filepath.Join(dir, "filter"), traceFilter); err != nil {
				return fmt.Errorf("trace: %w", err)
			}
		}
		if err := writeFile(filepath.Join(dir, "enable"), "1"); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
	}
	return writeFile(filepath.Join(tracefs, "tracing_on"), "1")
}

// stopTrace turns the events off and prints the lines from before to
// after microseconds around the record logged at recordUsec (none when it
// is negative: the record was not found), each as "trace <name> <rep>
// <µs since the record> <line>", at most maxLines.
func stopTrace(name string, rep int, recordUsec, before, after int64) error {
	if err := writeFile(filepath.Join(tracefs, "tracing_on"), "0"); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	for _, e := range traceEvents {
		_ = writeFile(filepath.Join(tracefs, "events", e, "enable"), "0")
	}
	if recordUsec < 0 {
		return nil
	}
	f, err := os.Open(filepath.Join(tracefs, "trace"))
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	const maxLines = 600
	printed := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		us, ok := traceUsec(line)
		if !ok || us < recordUsec-before || us > recordUsec+after {
			continue
		}
		fmt.Printf("trace %s %d %+d %s\n", name, rep, us-recordUsec, strings.TrimSpace(line))
		if printed++; printed == maxLines {
			fmt.Printf("trace %s %d: more lines left out\n", name, rep)
			break
		}
	}
	return sc.Err()
}

// traceUsec reads the timestamp of a trace line ("  comm-pid  [000] d..2.
// 123.456789: event: ..."), in microseconds.
func traceUsec(line string) (int64, bool) {
	i := strings.Index(line, ": ")
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(line[:i])
	if len(fields) == 0 {
		return 0, false
	}
	sec, frac, ok := strings.Cut(fields[len(fields)-1], ".")
	if !ok || len(frac) != 6 {
		return 0, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	u, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return s*1_000_000 + u, true
}
