package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klp-project/klp/e2e/internal/benchdata"
	"golang.org/x/sys/unix"
)

// result is one finished command, as bench/c/measure reports it.
type result struct {
	pid    int
	status syscall.WaitStatus
	start  int64 // CLOCK_MONOTONIC ns around fork and wait4
	end    int64
	cpu    time.Duration // user + system, waited-for children included
	maxRSS int64         // KiB
	stdout string
	stderr string
	err    error // nil when it ran and exited 0
}

func (r result) wall() time.Duration { return time.Duration(r.end - r.start) }

// parseReport reads the lines of bench/c/measure from fd 3 into res.
// The pid line comes first; ok is true once the exit line was read.
func parseReport(line string, res *result) (exited bool, err error) {
	var status int
	var utime, stime int64
	switch {
	case strings.HasPrefix(line, "pid "):
		_, err = fmt.Sscanf(line, "pid %d", &res.pid)
	case strings.HasPrefix(line, "exit "):
		_, err = fmt.Sscanf(line, "exit %d start %d end %d utime %d stime %d maxrss %d",
			&status, &res.start, &res.end, &utime, &stime, &res.maxRSS)
		res.status = syscall.WaitStatus(status)
		res.cpu = time.Duration(utime+stime) * time.Microsecond
		exited = err == nil
	default:
		err = fmt.Errorf("unexpected line %q", line)
	}
	if err != nil {
		return false, fmt.Errorf("parse the report of %s: %w", measureBin, err)
	}
	return exited, nil
}

// runMeasured runs argv under bench/c/measure with its output on pipes,
// and returns what it cost.
func runMeasured(argv []string, timeout time.Duration) result {
	rep, repW, err := os.Pipe()
	if err != nil {
		return result{err: err}
	}
	defer rep.Close()
	cmd := exec.Command(measureBin, argv...)
	cmd.Env = []string{"PATH=/bin", "HOME=/root"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.ExtraFiles = []*os.File{repW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		repW.Close()
		return result{err: err}
	}
	repW.Close()
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var res result
	exited := false
	sc := bufio.NewScanner(rep)
	for sc.Scan() && err == nil {
		exited, err = parseReport(sc.Text(), &res)
	}
	werr := cmd.Wait()
	res.stdout, res.stderr = out.String(), errb.String()
	switch {
	case !timer.Stop():
		res.err = fmt.Errorf("killed after %s", timeout)
	case err != nil:
		res.err = err
	case werr != nil || !exited:
		res.err = fmt.Errorf("%s failed: %v", measureBin, werr)
	case !res.status.Exited() || res.status.ExitStatus() != 0:
		res.err = fmt.Errorf("%s: %s", argv[0], describeStatus(res.status))
	}
	return res
}

func describeStatus(st syscall.WaitStatus) string {
	if st.Signaled() {
		return "killed by " + st.Signal().String()
	}
	return fmt.Sprintf("exit status %d", st.ExitStatus())
}

// scanner is one way of listing the blocking tasks.
type scanner struct {
	name  string
	argv  []string
	check func(stdout string) error // is its output right?
}

func (b *bench) scanners(n int) []scanner {
	tid := strconv.Itoa(b.kthread)
	onlyTID := func(out string) error {
		if out != tid+"\n" {
			return fmt.Errorf("printed %q, want the kthread's TID %s", trunc(out), tid)
		}
		return nil
	}
	s := []scanner{
		{benchdata.CmdKlpBlocking, []string{klpBin, "blocking"}, onlyTID},
		{benchdata.CmdKlpBlockingJSON, []string{klpBin, "blocking", "--json"}, func(out string) error {
			var doc struct {
				Tasks []struct {
					TID int `json:"tid"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				return fmt.Errorf("printed no JSON document: %w", err)
			}
			if len(doc.Tasks) != 1 || doc.Tasks[0].TID != b.kthread {
				return fmt.Errorf("listed %+v, want the kthread %d alone", doc.Tasks, b.kthread)
			}
			return nil
		}},
		{benchdata.CmdKlpMetrics, []string{klpBin, "metrics"}, func(out string) error {
			// The kthread as the one blocking kernel thread: the
			// collector scanned every task.
			want := fmt.Sprintf("klp_blocking_tasks{kind=\"kernel\",patch=%q} 1\n", patchModule)
			if !strings.Contains(out, want) {
				return fmt.Errorf("printed no %q: %q", strings.TrimSpace(want), trunc(out))
			}
			return nil
		}},
		{benchdata.CmdCScan, []string{cscanBin, "/proc", "patch_state"}, func(out string) error {
			var tasks, busy int
			if _, err := fmt.Sscanf(out, "%d tasks, %d not idle", &tasks, &busy); err != nil || tasks < n {
				return fmt.Errorf("printed %q, want at least %d tasks", trunc(out), n)
			}
			return nil
		}},
		{benchdata.CmdBash, []string{bashBin, "-c", scanScript, "bash", patchModule}, onlyTID},
	}
	if n <= b.cfg.kpatchMax {
		s = append(s, scanner{benchdata.CmdKpatch, []string{bashBin, "-c", kpatchScript, "bash", patchModule}, onlyTID})
	}
	if !b.cfg.runs("scans") {
		// klp metrics beside klp blocking only.
		s = slices.DeleteFunc(s, func(sc scanner) bool {
			return sc.name != benchdata.CmdKlpBlocking && sc.name != benchdata.CmdKlpMetrics
		})
	}
	return s
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// scans measures the scanners at n threads, interleaved: each round runs
// each once, starting one further along each time.
func (b *bench) scans(n, tasks int) error {
	if err := loadBlocked(); err != nil {
		return err
	}
	scanners := b.scanners(n)
	if n > b.cfg.kpatchMax && b.cfg.runs("scans") {
		note("%s threads: %s skipped (it forks twice per task: %d tasks take too long)", benchdata.Thousands(n), benchdata.CmdKpatch, tasks)
	}
	// Warm the caches (procfs dentries, the binaries' pages) once.
	runMeasured([]string{cscanBin, "/proc", "patch_state"}, time.Hour)
	runMeasured([]string{klpBin, "blocking"}, time.Hour)
	var samples []benchdata.Sample
	for rep := range b.cfg.reps {
		for i := range scanners {
			sc := scanners[(i+rep)%len(scanners)]
			res := runMeasured(sc.argv, time.Hour)
			s := benchdata.Sample{
				Threads: n, Tasks: tasks, Command: sc.name, Kind: benchdata.KindScan, Rep: rep,
				Wall: res.wall().Seconds(), CPU: res.cpu.Seconds(), MaxRSS: res.maxRSS,
			}
			switch {
			case res.err != nil:
				s.Error = fmt.Sprintf("%v; stderr %q", res.err, trunc(res.stderr))
			default:
				if err := sc.check(res.stdout); err != nil {
					s.Error = err.Error()
				}
			}
			samples = append(samples, s)
		}
	}
	err := unload()
	flush(samples)
	return err
}

// waiter is one way of waiting for the transition.
type waiter struct {
	name string
	argv []string
	tty  bool // stdout and stderr on a terminal
}

func (b *bench) waiters() []waiter {
	// Time enough that klp's own timeout never ends a stall.
	timeout := (b.cfg.stall + time.Minute).String()
	return []waiter{
		{benchdata.CmdKlpWait, []string{klpBin, "wait", "--timeout", timeout}, false},
		{benchdata.CmdKlpWaitTTY, []string{klpBin, "wait", "--timeout", timeout}, true},
		{benchdata.CmdPoll, []string{bashBin, "-c", pollScript, "bash", patchModule}, false},
		{benchdata.CmdKmsgWait, []string{kmsgwaitBin, patchModule}, false},
	}
}

// waits measures the waiters at n threads, interleaved.
func (b *bench) waits(n, tasks int) error {
	ws := b.waiters()
	var samples []benchdata.Sample
	var err error
	for rep := range b.cfg.waitReps {
		for i := range ws {
			var s benchdata.Sample
			s, err = b.waitOnce(ws[(i+rep)%len(ws)], n, tasks, rep)
			samples = append(samples, s)
			if err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	flush(samples)
	return err
}

// warmUp is how long a waiter runs before its CPU is counted: its start
// (the Go runtime, reading the patches) is not waiting.
const warmUp = time.Second

// waitOnce stalls a transition for the configured time with the waiter
// running, releases it and measures when the waiter returns. The returned
// error is for failures of the set-up, after which nothing more can be
// measured; the waiter's own failures are in the sample.
func (b *bench) waitOnce(w waiter, n, tasks, rep int) (benchdata.Sample, error) {
	s := benchdata.Sample{Threads: n, Tasks: tasks, Command: w.name, Kind: benchdata.KindWait, Rep: rep}
	if err := loadBlocked(); err != nil {
		s.Error = err.Error()
		return s, err
	}
	p, err := startWaiter(w, b.cgroup)
	if err != nil {
		s.Error = err.Error()
		return s, unload()
	}
	defer p.kill()
	time.Sleep(warmUp)
	c0, err0 := cpuTicks(p.pid)
	r0, rerr0 := runCount(p.pid)
	u0, uerr0 := b.waiterUsage()
	t0 := time.Now()
	time.Sleep(b.cfg.stall - warmUp)
	c1, err1 := cpuTicks(p.pid)
	r1, rerr1 := runCount(p.pid)
	u1, uerr1 := b.waiterUsage()
	t1 := time.Now()
	select {
	case res := <-p.done:
		s.Error = fmt.Sprintf("returned during the stall: %v, output %q", res.err, p.output())
		return s, unload()
	default:
	}
	window := t1.Sub(t0).Seconds()
	if err0 == nil && err1 == nil {
		v := float64(c1-c0) / 100 / window // USER_HZ is 100
		s.CPUPerSecTicks, s.Window = &v, window
	}
	if rerr0 == nil && rerr1 == nil {
		v := float64(r1-r0) / window
		s.RunsPerSec = &v
	}
	switch {
	case b.cgroup == nil:
		// Clock ticks alone, as results from before the cgroup.
		s.CPUPerSec, s.CPUPerSecTicks = s.CPUPerSecTicks, nil
	case uerr0 == nil && uerr1 == nil:
		v := (u1 - u0).Seconds() / window
		s.CPUPerSec, s.Window = &v, window
	default:
		s.Error = fmt.Sprintf("read the cgroup's CPU: %v", errors.Join(uerr0, uerr1))
		return s, unload()
	}
	log, err := openKmsg()
	if err != nil {
		s.Error = err.Error()
		return s, unload()
	}
	defer log.Close()
	off1, bound1, cerr1 := clockOffset()
	if b.cfg.trace {
		if err := startTrace(); err != nil {
			note("%v", err)
		}
	}
	if err := release(); err != nil {
		s.Error = err.Error()
		return s, unload()
	}
	var res result
	select {
	case res = <-p.done:
	case <-time.After(2 * time.Minute):
		s.Error = "did not return within 2 minutes of the release"
		p.kill()
		return s, unload()
	}
	off2, bound2, cerr2 := clockOffset()
	exitAt := res.end
	s.Wall, s.CPU, s.MaxRSS = res.wall().Seconds(), res.cpu.Seconds(), res.maxRSS
	if res.err != nil {
		s.Error = fmt.Sprintf("%v, output %q", res.err, p.output())
	}
	var done *kmsgRecord
	for _, r := range log.records() {
		if strings.Contains(r.Msg, completionMsg) {
			done = &r
			break
		}
	}
	switch {
	case done == nil:
		s.Error = "no \"" + completionMsg + "\" in the kernel log"
	case cerr1 != nil:
		s.Error = cerr1.Error()
	case cerr2 != nil:
		s.Error = cerr2.Error()
	default:
		// The offset of the log's clock drifts little over a second or
		// two; the difference of the two readings joins the bound.
		off := (off1 + off2) / 2
		spread := off1 - off2
		if spread < 0 {
			spread = -spread
		}
		lat := time.Duration(exitAt - (done.Usec*1000 + off)).Seconds()
		s.Latency = &lat
		s.LatencyErr = time.Duration(max(bound1, bound2) + spread/2).Seconds()
	}
	if b.cfg.trace {
		// From 2 ms before the record to 10 ms after the waiter's exit.
		at, after := int64(-1), int64(0)
		if done != nil && s.Latency != nil {
			at = done.Usec
			after = max(time.Duration(*s.Latency*float64(time.Second)).Microseconds(), 0) + 10000
		}
		if err := stopTrace(w.name, rep, at, 2000, after); err != nil {
			note("%v", err)
		}
	}
	return s, unload()
}

// waiterUsage returns the CPU time used so far in the waiters' cgroup.
func (b *bench) waiterUsage() (time.Duration, error) {
	if b.cgroup == nil {
		return 0, nil
	}
	return cgroupUsage(waiterCgroup)
}

// running is a started waiter.
type running struct {
	pid  int         // the waiter's, under bench/c/measure
	proc *os.Process // bench/c/measure
	done chan result // the waiter's result, once it returned
	mu   sync.Mutex
	file *os.File // where it printed (a terminal's reader copies there)
}

// startWaiter starts w under bench/c/measure with its output to a file,
// or on a terminal (a pseudo-terminal that cat reads into a file), and
// stdin on /dev/null; in cgroup when it is not nil (bench/c/measure then
// starts there, and the waiter and all its children run there).
func startWaiter(w waiter, cgroup *os.File) (*running, error) {
	var rd, wr *os.File
	var err error
	if w.tty {
		rd, wr, err = startTerminal()
	} else {
		// A file, not a pipe: a pipe's reader (this program) would be
		// woken by the waiter's outcome and take the vCPU from it before
		// it exits, a cost of the reader that the C floor, which prints
		// nothing, is spared.
		rd, wr, err = tempOutput()
	}
	if err != nil {
		return nil, err
	}
	defer wr.Close()
	rep, repW, err := os.Pipe()
	if err != nil {
		rd.Close()
		return nil, err
	}
	defer repW.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		rd.Close()
		rep.Close()
		return nil, err
	}
	defer null.Close()
	r := &running{done: make(chan result, 1)}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if cgroup != nil {
		sys.UseCgroupFD, sys.CgroupFD = true, int(cgroup.Fd())
	}
	r.proc, err = os.StartProcess(measureBin, append([]string{measureBin}, w.argv...), &os.ProcAttr{
		Env:   []string{"PATH=/bin", "HOME=/root", "TERM=linux"},
		Files: []*os.File{null, wr, wr, repW},
		Sys:   sys,
	})
	if err != nil {
		rd.Close()
		rep.Close()
		return nil, fmt.Errorf("start %s: %w", w.name, err)
	}
	r.file = rd
	sc := bufio.NewScanner(rep)
	var res result
	if !sc.Scan() {
		r.kill()
		rep.Close()
		return nil, fmt.Errorf("start %s: %s reported nothing", w.name, measureBin)
	}
	if _, err := parseReport(sc.Text(), &res); err != nil || res.pid == 0 {
		r.kill()
		rep.Close()
		return nil, fmt.Errorf("start %s: %v", w.name, err)
	}
	r.pid = res.pid
	go func() {
		defer rep.Close()
		exited := false
		var err error
		for !exited && err == nil && sc.Scan() {
			exited, err = parseReport(sc.Text(), &res)
		}
		_, werr := r.proc.Wait()
		switch {
		case err != nil:
			res.err = err
		case !exited:
			res.err = fmt.Errorf("%s ended without a report: %v", measureBin, werr)
		case !res.status.Exited() || res.status.ExitStatus() != 0:
			res.err = fmt.Errorf("%s", describeStatus(res.status))
		}
		r.done <- res
	}()
	return r, nil
}

// tempOutput opens an unlinked temporary file twice: to read, and to write.
func tempOutput() (rd, wr *os.File, err error) {
	wr, err = os.CreateTemp("", "klp-bench-out-")
	if err != nil {
		return nil, nil, err
	}
	rd, err = os.Open(wr.Name())
	os.Remove(wr.Name())
	if err != nil {
		wr.Close()
		return nil, nil, err
	}
	return rd, wr, nil
}

// startTerminal opens a pseudo-terminal for a waiter and starts its reader:
// busybox's cat, which copies the master end to a temporary file until the
// waiter has gone (the master then reads EIO). It returns the file to read
// and the terminal to give the waiter.
//
// The reader is a terminal's cost on the waiter's CPU: every write to the
// terminal wakes it. A terminal emulator or sshd reads with one thread;
// this program, read through Go's poller, woke three or four of its
// threads per write, 1.5 to 5 ms under TCG on one vCPU, which the trace
// charged to the waiter's return. cat's one blocking read is closer to a
// real terminal's reader.
func startTerminal() (rd, tty *os.File, err error) {
	master, tty, err := openPTY()
	if err != nil {
		return nil, nil, err
	}
	defer master.Close()
	rd, wr, err := tempOutput()
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	defer wr.Close()
	cat := exec.Command("/bin/cat")
	cat.Stdin, cat.Stdout = master, wr
	if err := cat.Start(); err != nil {
		tty.Close()
		rd.Close()
		return nil, nil, fmt.Errorf("start the terminal's reader: %w", err)
	}
	// cat ends with the terminal, on EIO: its status says nothing.
	go func() { _ = cat.Wait() }()
	return rd, tty, nil
}

// kill ends the waiter and bench/c/measure (a process group).
// Its output file is closed: kill is the last use of r.
func (r *running) kill() {
	_ = syscall.Kill(-r.proc.Pid, syscall.SIGKILL)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

// output returns the end of what the waiter printed.
func (r *running) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out string
	if r.file != nil {
		b := make([]byte, 64*1024)
		n, _ := r.file.ReadAt(b, 0)
		out = string(b[:n])
	}
	if len(out) > 300 {
		out = "..." + out[len(out)-300:]
	}
	return out
}

// openPTY opens a pseudo-terminal: the master end to read, the slave end
// for the child.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pseudo-terminal number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	return m, s, nil
}
