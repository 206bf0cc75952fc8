package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The kernel's announcement of the end of a transition, which klp's waits
// sleep on (klp_complete_transition's pr_notice).
const (
	patchingComplete   = "livepatch: 'klp_e2e_target_patch': patching complete"
	unpatchingComplete = "livepatch: 'klp_e2e_target_patch': unpatching complete"
)

// waiterTimeout bounds every waiter of the scenario: long enough for the
// slowest step (a flood on a loaded host), far from the scenario's result.
const waiterTimeout = "180s"

// scenarioKlpWait shows how klp waits for a transition on the real kernel:
// it sleeps on /dev/kmsg and notices the completion through the kernel's
// record, for patching and unpatching; where the log cannot be read (a
// /dev/null bind-mounted over /dev/kmsg, an unprivileged user under
// kernel.dmesg_restrict) it polls the attribute; it survives records lost
// to a flooded log (EPIPE), with the transition still running or the
// completion record itself overwritten, and a flood while the transition
// completes; Ctrl-C ends it. What each waiter cost while the transition
// was stalled is noted (CPU ticks, context switches of all its threads).
func scenarioKlpWait(r *runner) {
	r.holdKthread()
	// Writes to /dev/kmsg are rate-limited (ten a burst) unless
	// printk_devkmsg is on: the flood and the markers need it. The sysctl
	// takes the value with its newline only (EINVAL without).
	const devkmsg = "/proc/sys/kernel/printk_devkmsg"
	if old, err := readTrim(devkmsg); err == nil {
		r.atCleanup(func() { _ = writeFile(devkmsg, old+"\n") })
		r.must(r.expectNoErr("printk-devkmsg", writeFile(devkmsg, "on\n"), "echo on > %s", devkmsg))
	}

	// 1. Patching, noticed through the log; meanwhile an unprivileged
	// waiter, which kernel.dmesg_restrict keeps from the log, polls.
	r.stallPatching("log")
	c := r.startWaiter("log", nil, true, "wait")
	restrict := readIntOr("/proc/sys/kernel/dmesg_restrict")
	var u *child
	if restrict == 1 {
		var err error
		u, err = r.start(&syscall.Credential{Uid: userUID, Gid: userUID}, "/bin/klp", "-v", "wait", "--timeout", waiterTimeout)
		r.expectNoErr("user-start", err, "start klp -v wait as uid %d", userUID)
	} else {
		r.note("dmesg-restrict", "%d: the unprivileged waiter is skipped", restrict)
	}
	time.Sleep(500 * time.Millisecond) // let the user's waiter start too
	r.noteIdleCost("log", c)
	if u != nil {
		r.noteIdleCost("user", u)
	}
	seq := kmsgLastSeq()
	r.release("log")
	r.finishWaiter("log", c, seq, patchingComplete, "patched", "noticed by the kernel log")
	if u != nil {
		r.finishWaiter("user", u, seq, patchingComplete, "patched", "noticed by polling")
		r.expect("user-log-refused", strings.Contains(u.stderr.String(), "polled the transition attribute (the kernel log could not be watched") &&
			strings.Contains(u.stderr.String(), "operation not permitted"),
			"the unprivileged waiter says why it polled (EPERM on /dev/kmsg); stderr %q", u.stderr.String())
	}
	r.expect("record-patching", kmsgHas(seq, patchingComplete), "the kernel logged %q; log %q", patchingComplete, kmsgSince(seq))

	// 2. Unpatching, noticed through the log: the kthread parked in the
	// patch's own replacement holds the disable back.
	r.must(r.expectNoErr("park", writeFile(patchParams+"block", "1"), "echo 1 > %sblock", patchParams))
	r.must(r.expect("parked", waitFor(10*time.Second, func() bool { return readIntOr(patchParams+"waiting") == 1 }),
		"the kthread sleeps in the replacement function"))
	c = r.startWaiter("unpatch", nil, true, "disable", "klp_e2e_target_patch")
	r.must(r.expect("unpatch-stalled", waitFor(10*time.Second, func() bool {
		p, err := readSysPatch("klp_e2e_target_patch")
		return err == nil && p.enabled == 0 && p.transition == 1
	}), "klp disable started the unpatching transition, which stays open"))
	seq = kmsgLastSeq()
	r.must(r.expectNoErr("unpark", writeFile(patchParams+"block", "0"), "echo 0 > %sblock", patchParams))
	r.finishWaiter("unpatch", c, seq, unpatchingComplete, "unpatched|removed", "noticed by the kernel log")
	r.expect("record-unpatching", kmsgHas(seq, unpatchingComplete), "the kernel logged %q; log %q", unpatchingComplete, kmsgSince(seq))
	r.removeTargetPatch("unpatch")

	// 3. No log: /dev/null bind-mounted over /dev/kmsg. klp sees that it is
	// not the log device and polls.
	r.blockKthread("fallback")
	r.stallPatching("fallback")
	r.must(r.expectNoErr("bind-null", syscall.Mount("/dev/null", "/dev/kmsg", "", syscall.MS_BIND, ""), "mount --bind /dev/null /dev/kmsg"))
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			r.expectNoErr("unbind-null", syscall.Unmount("/dev/kmsg", 0), "umount /dev/kmsg")
		}
	}
	r.atCleanup(unmount)
	c = r.startWaiter("fallback", nil, false, "wait")
	time.Sleep(time.Second) // past its start
	r.noteIdleCost("fallback", c)
	r.release("fallback")
	if !r.expect("fallback-exited", c.exited(30*time.Second), "klp wait returned") {
		return
	}
	unmount()
	r.finishWaiter("fallback", c, 0, "", "patched", "noticed by polling")
	r.expect("fallback-reason", strings.Contains(c.stderr.String(), "is not the kernel log device"),
		"klp says why it polled; stderr %q", c.stderr.String())
	r.disableTargetPatch("fallback")
	r.removeTargetPatch("fallback")

	// 4. Records lost while the transition runs: the waiter is stopped
	// while the log is flooded past its position, so that its next read
	// fails with EPIPE. It reads the attribute, goes back to the log, and
	// notices the completion there.
	r.blockKthread("lost")
	r.stallPatching("lost")
	c = r.startWaiter("lost", nil, true, "wait")
	r.must(r.expectNoErr("lost-stop", syscall.Kill(c.cmd.Process.Pid, syscall.SIGSTOP), "SIGSTOP klp wait"))
	n, err := floodPast(kmsgLastSeq())
	r.note("lost-flood", "%d records written to overwrite the waiter's position (%v)", n, err)
	r.must(r.expectNoErr("lost-cont", syscall.Kill(c.cmd.Process.Pid, syscall.SIGCONT), "SIGCONT klp wait"))
	r.expect("lost-noticed", waitFor(60*time.Second, func() bool { return strings.Contains(c.stderr.String(), "records were overwritten") }),
		"klp -v says that records were lost; stderr %q", c.stderr.String())
	p, _ := readSysPatch("klp_e2e_target_patch")
	r.expect("lost-still-waiting", !c.exited(0) && p.transition == 1, "klp still waits for the transition (transition=%d)", p.transition)
	seq = kmsgLastSeq()
	r.release("lost")
	r.finishWaiter("lost", c, seq, patchingComplete, "patched", "noticed by the kernel log")

	// 5. The completion record itself lost: stopped while the transition
	// completes and the log is flooded past the record. The answer comes
	// from the attribute.
	r.disableTargetPatch("lost-record")
	r.removeTargetPatch("lost-record")
	r.blockKthread("lost-record")
	r.stallPatching("lost-record")
	c = r.startWaiter("lost-record", nil, true, "wait")
	r.must(r.expectNoErr("lost-record-stop", syscall.Kill(c.cmd.Process.Pid, syscall.SIGSTOP), "SIGSTOP klp wait"))
	seq = kmsgLastSeq()
	r.release("lost-record")
	r.must(r.expect("lost-record-completed", waitFor(30*time.Second, func() bool { return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0 }),
		"the transition completed while klp was stopped"))
	r.expect("lost-record-logged", kmsgHas(seq, patchingComplete), "the kernel logged %q", patchingComplete)
	n, err = floodPast(seq + 1)
	r.note("lost-record-flood", "%d records written to overwrite the completion record (%v)", n, err)
	r.expect("lost-record-gone", !kmsgHas(seq, patchingComplete), "the completion record is no longer in the log")
	r.must(r.expectNoErr("lost-record-cont", syscall.Kill(c.cmd.Process.Pid, syscall.SIGCONT), "SIGCONT klp wait"))
	r.finishWaiter("lost-record", c, 0, "", "patched", "")

	// 6. A flood while the transition completes: klp reads every record
	// (or loses some) and still returns at once, correctly.
	r.disableTargetPatch("flood")
	r.removeTargetPatch("flood")
	r.blockKthread("flood")
	r.stallPatching("flood")
	c = r.startWaiter("flood", nil, true, "wait")
	fl := startFlood()
	time.Sleep(2 * time.Second)
	r.noteIdleCost("flood", c)
	released := time.Now()
	// When the kernel completed, as its attribute says (the completion
	// record is soon overwritten by the flood).
	completed := make(chan time.Duration, 1)
	go func() {
		waitFor(60*time.Second, func() bool {
			return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0
		})
		completed <- time.Since(released)
	}()
	r.release("flood")
	exited := c.exited(60 * time.Second)
	returned := time.Since(released)
	written, rate := fl.stop()
	kernelDone := <-completed
	r.note("flood-rate", "%d records written, %.0f a second", written, rate)
	if r.expect("flood-exited", exited, "klp wait returned during the flood") {
		r.note("flood-returned", "%.0f ms after the kthread was released; the runner saw transition 0 after %.0f ms (it polls every 10 ms)",
			returned.Seconds()*1000, kernelDone.Seconds()*1000)
	}
	r.finishWaiter("flood", c, 0, "", "patched", "")

	// 7. Ctrl-C ends a wait that sleeps on the log.
	r.disableTargetPatch("interrupt")
	r.removeTargetPatch("interrupt")
	r.blockKthread("interrupt")
	r.stallPatching("interrupt")
	c = r.startWaiter("interrupt", nil, true, "wait")
	r.must(r.expectNoErr("interrupt-sigint", syscall.Kill(c.cmd.Process.Pid, syscall.SIGINT), "SIGINT klp wait"))
	if r.expect("interrupt-exited", c.exited(30*time.Second), "klp wait returned after SIGINT") {
		code := c.cmd.ProcessState.ExitCode()
		r.expect("interrupt-status", code == 130 && strings.Contains(c.stderr.String(), "interrupted"),
			"exit 130, stderr says interrupted; got %d, %q", code, c.stderr.String())
	}
	r.release("interrupt")
}

// stallPatching loads klp_e2e_target_patch while the kthread sleeps in the
// function it replaces: the transition stays open.
func (r *runner) stallPatching(label string) {
	res := insmod("klp_e2e_target_patch")
	r.must(r.expect(label+"-insmod", res.code == 0, "%v", res))
	tr := readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition"))
	r.must(r.expect(label+"-stalled", tr == 1, "the patching transition stays open (transition=%d)", tr))
}

// blockKthread parks the kthread of klp_e2e_target in the function that
// klp_e2e_target_patch replaces again.
func (r *runner) blockKthread(label string) {
	r.must(r.expectNoErr(label+"-block", writeFile(targetParams+"block_kthread", "1"), "echo 1 > %sblock_kthread", targetParams))
	r.must(r.expect(label+"-kthread-waiting", waitFor(10*time.Second, func() bool { return readIntOr(targetParams+"kthread_waiting") == 1 }),
		"the kthread sleeps in klp_e2e_target_work()"))
}

// release lets the kthread go: the kernel completes the transition on its
// next retry.
func (r *runner) release(label string) {
	r.must(r.expectNoErr(label+"-release", writeFile(targetParams+"block_kthread", "0"), "echo 0 > %sblock_kthread", targetParams))
}

// disableTargetPatch disables klp_e2e_target_patch and waits for the
// kernel to free it.
func (r *runner) disableTargetPatch(label string) {
	r.must(r.expectNoErr(label+"-disable", writeFile(filepath.Join(lpRoot, "klp_e2e_target_patch", "enabled"), "0"), "echo 0 > enabled"))
}

// removeTargetPatch removes klp_e2e_target_patch's module once its patch
// is gone.
func (r *runner) removeTargetPatch(label string) {
	ok := waitFor(30*time.Second, func() bool {
		return !exists(filepath.Join(lpRoot, "klp_e2e_target_patch")) && rmmod("klp_e2e_target_patch").code == 0
	})
	r.must(r.expect(label+"-rmmod", ok, "klp_e2e_target_patch freed and removed"))
}

// startWaiter starts klp -v <args> --timeout as cred (nil: root) and, when
// logged, waits until it holds /dev/kmsg open: it sleeps on the log.
func (r *runner) startWaiter(label string, cred *syscall.Credential, logged bool, args ...string) *child {
	argv := append([]string{"/bin/klp", "-v"}, args...)
	argv = append(argv, "--timeout", waiterTimeout)
	c, err := r.start(cred, argv...)
	r.must(r.expectNoErr(label+"-start", err, "start %s", strings.Join(argv, " ")))
	if logged {
		r.must(r.expect(label+"-holds-kmsg", waitFor(30*time.Second, func() bool { return holdsKmsg(c.cmd.Process.Pid) }),
			"%s holds /dev/kmsg open", strings.Join(argv, " ")))
	}
	return c
}

// finishWaiter waits for a waiter to return and checks its result (one of
// the results separated by '|') and how it noticed the end (when said).
// With a completion record to look for after seq, it notes how long after
// the record the waiter returned (an upper bound: a marker record written
// once the runner saw it exit).
func (r *runner) finishWaiter(label string, c *child, seq uint64, record, results, noticed string) {
	if !r.expect(label+"-returned", c.exited(60*time.Second), "klp returned") {
		return
	}
	if record != "" {
		mark := fmt.Sprintf("klp-e2e: %s waiter returned", label)
		if err := writeKmsg(mark); err == nil {
			if d, ok := recordGap(seq, record, mark); ok {
				r.note(label+"-returned-after-record", "%.1f ms (at most; the runner's own reaction included)", d.Seconds()*1000)
			}
		}
	}
	out, errOut := c.stdout.String(), c.stderr.String()
	code := c.cmd.ProcessState.ExitCode()
	okResult := false
	for _, res := range strings.Split(results, "|") {
		okResult = okResult || strings.Contains(out, "klp_e2e_target_patch: "+res+" (")
	}
	r.expect(label+"-result", code == 0 && okResult, "exit 0 and %s; got %d, stdout %q, stderr %q", results, code, out, errOut)
	if noticed != "" {
		r.expect(label+"-noticed", strings.Contains(errOut, noticed), "klp -v says %q; stderr %q", noticed, errOut)
	}
	if i := strings.Index(errOut, "noticed by "); i >= 0 {
		r.note(label+"-how", "%s", strings.TrimSpace(errOut[i:]))
	} else if i := strings.Index(errOut, "wait for"); i >= 0 {
		r.note(label+"-how", "%s", strings.TrimSpace(errOut[i:]))
	}
}

// noteIdleCost notes what a waiter costs over two seconds of a stalled
// transition: its CPU time and the context switches of all its threads.
func (r *runner) noteIdleCost(label string, c *child) {
	pid := c.cmd.Process.Pid
	t0, s0 := cpuTicks(pid), ctxSwitches(pid)
	start := time.Now()
	time.Sleep(2 * time.Second)
	t1, s1 := cpuTicks(pid), ctxSwitches(pid)
	secs := time.Since(start).Seconds()
	r.note(label+"-idle-cost", "%.1f%% of a CPU, %.1f context switches a second over %.1f s of a stalled transition",
		float64(t1-t0)/100/secs*100, float64(s1-s0)/secs, secs)
}

// holdsKmsg reports whether process pid has /dev/kmsg open.
func holdsKmsg(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == "/dev/kmsg" {
			return true
		}
	}
	return false
}

// cpuTicks returns the user and system time of process pid, in clock ticks
// (fields 14 and 15 of /proc/<pid>/stat).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// ctxSwitches returns the context switches of every thread of pid.
func ctxSwitches(pid int) int64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var n int64
	for _, t := range tasks {
		st, _ := readTrim(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, l := range lines(st) {
			k, v, ok := strings.Cut(l, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

// writeKmsg logs one record (level info) through /dev/kmsg.
func writeKmsg(msg string) error {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("<6>" + msg + "\n")
	return err
}

// recordGap returns the time between the first record after seq that says
// first and the record that says then, on the log's clock.
func recordGap(seq uint64, first, then string) (time.Duration, bool) {
	recs, _ := kmsgRecords(seq)
	var a int64 = -1
	for _, rec := range recs {
		switch {
		case a < 0 && rec.msg == first:
			a = rec.usec
		case a >= 0 && rec.msg == then:
			return time.Duration(rec.usec-a) * time.Microsecond, true
		}
	}
	return 0, false
}

// floodFiller pads a flood record to about 200 bytes.
var floodFiller = strings.Repeat("x", 180)

// floodPast writes records to /dev/kmsg until the record seq is no longer
// held (the ring buffer overwrote it), and returns how many it wrote.
func floodPast(seq uint64) (int, error) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for n < 1_000_000 {
		for range 500 {
			if _, err := f.WriteString("<6>klp-e2e flood " + strconv.Itoa(n) + " " + floodFiller + "\n"); err != nil {
				return n, err
			}
			n++
		}
		if oldest, ok := oldestSeq(); ok && oldest > seq {
			return n, nil
		}
	}
	return n, fmt.Errorf("record %d still held", seq)
}

// oldestSeq returns the sequence number of the oldest record the log holds:
// a new reader of /dev/kmsg starts there.
func oldestSeq() (uint64, bool) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer syscall.Close(fd)
	buf := make([]byte, 8192)
	for range 8 {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EPIPE {
			continue
		}
		if err != nil || n <= 0 {
			return 0, false
		}
		head, _, _ := strings.Cut(string(buf[:n]), ";")
		f := strings.Split(head, ",")
		if len(f) < 2 {
			return 0, false
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		return seq, err == nil
	}
	return 0, false
}

// flood writes records to /dev/kmsg from a goroutine until stopped.
type flood struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	n       atomic.Int64
	started time.Time
}

func startFlood() *flood {
	fl := &flood{quit: make(chan struct{}), started: time.Now()}
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for i := 0; ; i++ {
			select {
			case <-fl.quit:
				return
			default:
			}
			if _, err := f.WriteString("<6>klp-e2e flood " + strconv.Itoa(i) + " " + floodFiller + "\n"); err != nil {
				return
			}
			fl.n.Add(1)
		}
	}()
	return fl
}

// stop ends the flood and returns the records written and their rate.
func (fl *flood) stop() (int64, float64) {
	close(fl.quit)
	fl.wg.Wait()
	n := fl.n.Load()
	return n, float64(n) / time.Since(fl.started).Seconds()
}
