package livepatch_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// stalledDisable returns a fake kernel whose patch a is unpatching, held
// back by task 100, and a control of it on the machine's clock (a handle
// without the fake's clock, as the running kernel's): the wait then blocks
// in a read of the log as it does on /dev/kmsg, and the tests act while it
// sleeps there. The waits on the fake's clock are tested below
// (TestWaitOnTheKernelClock...).
func stalledDisable(t *testing.T) (*fakekernel.Kernel, livepatch.Control) {
	t.Helper()
	k, _ := onFake(t, fakekernel.Linux6_12, "a")
	c := livepatch.NewControl(kernel.Simulate(k.Handle(), kernel.Seams{Attr: k, Modules: k, Signals: k, Log: k}))
	k.BlockTask(100)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	return k, c
}

type waitOutcome struct {
	res livepatch.WaitResult
	err error
}

// startWait runs WaitTransition on a in the background. The periodic
// recheck is an hour away unless opts says otherwise, so that only the log
// (or the polling) can end the wait.
func startWait(ctx context.Context, c livepatch.Control, opts livepatch.WaitOptions) <-chan waitOutcome {
	if opts.Recheck == 0 {
		opts.Recheck = time.Hour
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	done := make(chan waitOutcome, 1)
	go func() {
		res, err := c.WaitTransition(ctx, "a", opts)
		done <- waitOutcome{res, err}
	}()
	return done
}

// untilAsleep waits until the wait sleeps on the kernel log, having read
// every record logged before the call.
func untilAsleep(t *testing.T, k *fakekernel.Kernel) {
	t.Helper()
	sleeps := k.LogSleeps()
	k.Printk(6, "marker")
	for k.LogWaiters() != 1 || k.LogSleeps() == sleeps {
		time.Sleep(time.Millisecond)
	}
}

// complete lets task 100 go and runs the kernel's retry: a completes.
func complete(k *fakekernel.Kernel) {
	k.UnblockTask(100)
	k.Tick()
}

// The wait sleeps on the kernel log: a flood of other records does not make
// it read the attribute once per record, and the completion record ends it.
func TestWaitSleepsOnTheLog(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{})
	untilAsleep(t, k)
	k.Flood(1000)
	untilAsleep(t, k)
	complete(k)
	out := <-done
	if out.err != nil || out.res.Enabled || out.res.Noticed != livepatch.NoticedLog || out.res.LogErr != nil {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched, noticed through the log", out.res, out.err)
	}
	// One read at the start, and after the completion record a few until
	// the attribute shows it (the kernel logs it just before): never one
	// per record.
	if out.res.Checks >= 1000 {
		t.Errorf("%d reads of transition for 1,000 unrelated records", out.res.Checks)
	}
	if n := k.LogWatches(); n != 0 {
		t.Errorf("%d log watches left open", n)
	}
}

// Records lost (EPIPE): the completion record was overwritten before the
// wait read it, so the wait reads the attribute, which says it is over.
func TestWaitLostRecords(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{})
	untilAsleep(t, k)
	k.HoldLog() // the reader is descheduled meanwhile
	complete(k)
	k.Flood(fakekernel.DefaultLogCapacity + 10)
	k.ReleaseLog()
	out := <-done
	if out.err != nil || out.res.Enabled || out.res.Noticed != livepatch.NoticedLost || out.res.Lost < 1 {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched, noticed after a loss of records", out.res, out.err)
	}
}

// Records lost while the transition goes on: the wait looks, goes back to
// sleep, and the completion ends it.
func TestWaitLostRecordsStillStalled(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{})
	untilAsleep(t, k)
	k.HoldLog()
	k.Flood(fakekernel.DefaultLogCapacity + 10)
	k.ReleaseLog()
	untilAsleep(t, k)
	complete(k)
	out := <-done
	if out.err != nil || out.res.Noticed != livepatch.NoticedLog || out.res.Lost < 1 {
		t.Fatalf("WaitTransition = %+v, %v; want noticed through the log after a loss", out.res, out.err)
	}
}

// A completion record is a hint, never the answer: one that the attribute
// does not confirm leaves the wait waiting.
func TestWaitUnconfirmedCompletion(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{Timeout: 300 * time.Millisecond})
	untilAsleep(t, k)
	k.Printk(5, "livepatch: 'a': unpatching complete")
	out := <-done
	if !errors.Is(out.err, livepatch.ErrStalled) || out.res.Checks < 2 {
		t.Fatalf("WaitTransition = %+v, %v; want ErrStalled after reading the attribute again", out.res, out.err)
	}
}

// No kernel log (kernel.dmesg_restrict without CAP_SYSLOG): the wait polls.
func TestWaitWithoutLog(t *testing.T) {
	k, c := stalledDisable(t)
	k.InjectLogOpenFault(unix.EPERM)
	first := true
	out := <-startWait(context.Background(), c, livepatch.WaitOptions{
		ProgressInterval: time.Millisecond,
		// The first progress call comes after a read that saw the
		// transition running: complete it there.
		Progress: func(time.Duration, livepatch.PatchState) {
			if first {
				first = false
				complete(k)
			}
		},
	})
	if out.err != nil || out.res.Noticed != livepatch.NoticedPoll ||
		!errors.Is(out.res.LogErr, kernel.ErrLogUnavailable) || !errors.Is(out.res.LogErr, unix.EPERM) {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by polling, the log unavailable (EPERM)", out.res, out.err)
	}
}

// A handle without a log (a test double that brings none): the wait polls.
func TestWaitHandleWithoutLog(t *testing.T) {
	k, _ := stalledDisable(t)
	c := livepatch.NewControl(kernel.Simulate(k.Handle(), kernel.Seams{Attr: k}))
	first := true
	out := <-startWait(context.Background(), c, livepatch.WaitOptions{
		ProgressInterval: time.Millisecond,
		Progress: func(time.Duration, livepatch.PatchState) {
			if first {
				first = false
				complete(k)
			}
		},
	})
	if out.err != nil || out.res.Noticed != livepatch.NoticedPoll || !errors.Is(out.res.LogErr, kernel.ErrNotLive) {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by polling", out.res, out.err)
	}
}

// A log that breaks while the wait sleeps on it: the wait polls from then
// on.
func TestWaitLogBreaks(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{})
	untilAsleep(t, k)
	k.InjectLogReadFault(unix.EIO)
	complete(k)
	out := <-done
	if out.err != nil || out.res.Noticed != livepatch.NoticedPoll || !errors.Is(out.res.LogErr, unix.EIO) {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by polling after the log broke", out.res, out.err)
	}
}

// A completion the log never shows is still noticed, by the periodic read.
func TestWaitRecheck(t *testing.T) {
	k, c := stalledDisable(t)
	done := startWait(context.Background(), c, livepatch.WaitOptions{Recheck: 5 * time.Millisecond})
	untilAsleep(t, k)
	k.HoldLog()
	defer k.ReleaseLog()
	complete(k)
	out := <-done
	if out.err != nil || out.res.Noticed != livepatch.NoticedRecheck {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by the periodic read", out.res, out.err)
	}
}

// Ctrl-C ends a wait that sleeps on the log, and closes the log.
func TestWaitInterrupted(t *testing.T) {
	k, c := stalledDisable(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := startWait(ctx, c, livepatch.WaitOptions{})
	untilAsleep(t, k)
	cancel()
	out := <-done
	if !errors.Is(out.err, context.Canceled) || errors.Is(out.err, livepatch.ErrStalled) {
		t.Fatalf("WaitTransition = %+v, %v; want context.Canceled", out.res, out.err)
	}
	if n := k.LogWatches(); n != 0 {
		t.Errorf("%d log watches left open", n)
	}
}

// The timeout ends a wait that sleeps on the log, as ErrStalled.
func TestWaitTimeout(t *testing.T) {
	k, c := stalledDisable(t)
	out := <-startWait(context.Background(), c, livepatch.WaitOptions{Timeout: 20 * time.Millisecond})
	if !errors.Is(out.err, livepatch.ErrStalled) || out.res.LogErr != nil {
		t.Fatalf("WaitTransition = %+v, %v; want ErrStalled", out.res, out.err)
	}
	if n := k.LogWatches(); n != 0 {
		t.Errorf("%d log watches left open", n)
	}
}

// On the kernel handle's clock (the fake's, which moves only while klp
// sleeps on it) the wait sleeps on the log all the same: a flood of other
// records costs no read of the attribute, and the completion record that
// the retry work logs at 3 s ends the wait then, exactly.
func TestWaitOnTheKernelClockSleepsOnTheLog(t *testing.T) {
	k, c := onFake(t, fakekernel.Linux6_12, "a")
	k.BlockTask(100)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	k.After(1500*time.Millisecond, func() { k.Flood(1000) })
	k.After(2500*time.Millisecond, func() { k.UnblockTask(100) })
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: time.Minute, Recheck: time.Hour})
	if err != nil || res.Enabled || res.Noticed != livepatch.NoticedLog || res.LogErr != nil || res.Elapsed != 3*time.Second {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched at 3s, noticed through the log", res, err)
	}
	// The first read, and one after the completion record.
	if res.Checks != 2 {
		t.Errorf("%d reads of transition, want 2", res.Checks)
	}
	if n := k.LogWatches(); n != 0 {
		t.Errorf("%d log watches left open", n)
	}
}

// On the kernel handle's clock, the timeout and the periodic read are
// measured on it: a stalled wait of a minute reads the attribute at once,
// ever less often (1 s doubling to 4 s) and at the deadline, and ends as
// ErrStalled after exactly one minute of the fake's time.
func TestWaitOnTheKernelClockTimeout(t *testing.T) {
	k, c := onFake(t, fakekernel.Linux6_12, "a")
	k.BlockTask(100)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: time.Minute})
	if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != time.Minute || k.Elapsed() != time.Minute {
		t.Fatalf("WaitTransition = %+v, %v (fake clock at %v); want ErrStalled after 1m", res, err, k.Elapsed())
	}
	// At once; at 1, 3 and 7 s, then every 4 s to 59 s (16 rechecks);
	// on the record of the kernel's first signalling of the remaining
	// tasks (at 15 s); and at the deadline.
	if res.Checks != 19 {
		t.Errorf("%d reads of transition, want 19", res.Checks)
	}
	// A completion the log never shows is noticed by the periodic read.
	k.HoldLog()
	defer k.ReleaseLog()
	k.After(500*time.Millisecond, func() { k.UnblockTask(100) })
	res, err = c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: time.Minute, Recheck: 5 * time.Second})
	if err != nil || res.Noticed != livepatch.NoticedRecheck || res.Elapsed != 5*time.Second {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by the periodic read at 5s", res, err)
	}
}

// On the kernel handle's clock without a log, the wait polls on that
// clock: 1 ms doubling to 100 ms, so the completion at the retry work of
// 1 s is seen at the first poll after it.
func TestWaitOnTheKernelClockPolls(t *testing.T) {
	k, c := onFake(t, fakekernel.Linux6_12, "a")
	k.InjectLogOpenFault(unix.EPERM)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: time.Minute})
	// Polls at 0, 1, 3, 7, 15, 31, 63, 127, 227, ... 927, 1027 ms.
	if err != nil || res.Noticed != livepatch.NoticedPoll || res.Elapsed != 1027*time.Millisecond || !errors.Is(res.LogErr, unix.EPERM) {
		t.Fatalf("WaitTransition = %+v, %v; want noticed by polling at 1.027s", res, err)
	}
}

// A patch that is not in transition returns at once.
func TestWaitNotInTransition(t *testing.T) {
	_, c := onFake(t, fakekernel.Linux6_12, "a")
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{})
	if err != nil || !res.Enabled || res.Noticed != livepatch.NoticedAtOnce || res.Checks != 1 {
		t.Fatalf("WaitTransition = %+v, %v; want enabled, at once, one read", res, err)
	}
}

// A reverse is followed: the progress reports the new direction, and the
// completion of the reversed transition ends the wait.
func TestWaitFollowsReverse(t *testing.T) {
	k, c := stalledDisable(t)
	var targets []livepatch.PatchState
	reversed := false
	out := <-startWait(context.Background(), c, livepatch.WaitOptions{
		ProgressInterval: time.Millisecond,
		Progress: func(_ time.Duration, target livepatch.PatchState) {
			targets = append(targets, target)
			if !reversed {
				reversed = true
				if err := c.Enable("a"); err != nil {
					t.Error(err)
				}
			} else if target == livepatch.StatePatched {
				complete(k)
			}
		},
	})
	if out.err != nil || !out.res.Enabled {
		t.Fatalf("WaitTransition = %+v, %v; want patched after the reverse", out.res, out.err)
	}
	if len(targets) < 2 || targets[0] != livepatch.StateUnpatched || targets[len(targets)-1] != livepatch.StatePatched {
		t.Errorf("progress targets %v, want unpatched, then patched", targets)
	}
}

func TestParseLogEvent(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		ok   bool
		want livepatch.LogEvent
	}{
		{"livepatch: 'klp_e2e_target_patch': patching complete", true, livepatch.LogEvent{Kind: livepatch.EventComplete, Patch: "klp_e2e_target_patch", Target: livepatch.StatePatched}},
		{"livepatch: 'p': unpatching complete", true, livepatch.LogEvent{Kind: livepatch.EventComplete, Patch: "p", Target: livepatch.StateUnpatched}},
		{"livepatch: 'p': starting patching transition", true, livepatch.LogEvent{Kind: livepatch.EventStart, Patch: "p", Target: livepatch.StatePatched}},
		{"livepatch: 'p': starting unpatching transition", true, livepatch.LogEvent{Kind: livepatch.EventStart, Patch: "p", Target: livepatch.StateUnpatched}},
		{"livepatch: enabling patch 'p'", true, livepatch.LogEvent{}},
		{"livepatch: signaling remaining tasks", true, livepatch.LogEvent{}},
		{"livepatch: 'a/b': patching complete", true, livepatch.LogEvent{}},
		{"livepatch: 'p': patching complete, sort of", true, livepatch.LogEvent{}},
		{"usb 1-1: 'p': patching complete", false, livepatch.LogEvent{}},
		{"", false, livepatch.LogEvent{}},
	} {
		got, ok := livepatch.ParseLogEvent(tc.msg)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseLogEvent(%q) = %+v, %v; want %+v, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

// stalledOnFake returns a fake kernel whose patch a is unpatching, held
// back by task 100, on the kernel handle's clock (the fake's).
func stalledOnFake(t *testing.T) (*fakekernel.Kernel, livepatch.Control) {
	t.Helper()
	k, c := onFake(t, fakekernel.Linux6_12, "a")
	k.BlockTask(100)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	return k, c
}

// The rechecks double from Recheck up to RecheckMax, and a RecheckMax
// below Recheck keeps them at Recheck.
func TestWaitOnTheKernelClockRecheckMax(t *testing.T) {
	for _, tc := range []struct {
		recheck, max time.Duration
		checks       int
	}{
		// At once; at 1, 3, 5, 7 and 9 s; at the deadline.
		{time.Second, 2 * time.Second, 7},
		// At once; at 5 s; at the deadline.
		{5 * time.Second, time.Second, 3},
	} {
		_, c := stalledOnFake(t)
		res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 10 * time.Second, Recheck: tc.recheck, RecheckMax: tc.max})
		if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != 10*time.Second || res.Checks != tc.checks {
			t.Errorf("Recheck %v, RecheckMax %v: WaitTransition = %+v, %v; want ErrStalled at 10s after %d reads", tc.recheck, tc.max, res, err, tc.checks)
		}
	}
}

// Without a timeout the wait goes on until the transition ends.
func TestWaitOnTheKernelClockNoTimeout(t *testing.T) {
	k, c := stalledOnFake(t)
	k.After(2500*time.Millisecond, func() { k.UnblockTask(100) })
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{})
	if err != nil || res.Enabled || res.Noticed != livepatch.NoticedLog || res.Elapsed != 3*time.Second {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched at 3s, noticed through the log", res, err)
	}
}

// The polling where the log cannot be read follows Poll.Initial and
// Poll.Max, from the start or from when the log broke.
func TestWaitOnTheKernelClockPollOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakAt time.Duration // -1: the log cannot be opened
		poll    poll.Options
		want    time.Duration
	}{
		// 0, 10, 30, 70 ms, then every 40 ms: 1030 ms is the first
		// poll after the retry work at 1 s.
		{"no log", -1, poll.Options{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}, 1030 * time.Millisecond},
		// At once when the log broke (500 ms), then the doubled
		// interval: 520, 560 ms, then every 40 ms.
		{"log breaks", 500 * time.Millisecond, poll.Options{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}, time.Second},
		// 500, 502, 506, ..., 626, 726, 826, 926, 1026 ms.
		{"log breaks, default polling", 500 * time.Millisecond, poll.Options{}, 1026 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, c := onFake(t, fakekernel.Linux6_12, "a")
			if tc.breakAt < 0 {
				k.InjectLogOpenFault(unix.EPERM)
			} else {
				k.After(tc.breakAt, func() { k.InjectLogReadFault(unix.EIO) })
			}
			if err := c.Disable("a"); err != nil {
				t.Fatal(err)
			}
			res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: time.Minute, Recheck: time.Hour, Poll: tc.poll})
			if err != nil || res.Noticed != livepatch.NoticedPoll || res.LogErr == nil || res.Elapsed != tc.want {
				t.Fatalf("WaitTransition = %+v, %v; want noticed by polling at %v", res, err, tc.want)
			}
		})
	}
}

// Progress is reported every ProgressInterval (1 s by default) with the
// state the tasks move to, and its read of the attribute notices an end
// the log did not show.
func TestWaitOnTheKernelClockProgress(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		calls    []time.Duration
	}{
		{1500 * time.Millisecond, []time.Duration{1500 * time.Millisecond}},
		{0, []time.Duration{time.Second, 2 * time.Second}},
	} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			k, c := stalledOnFake(t)
			k.HoldLog()
			defer k.ReleaseLog()
			k.After(2500*time.Millisecond, func() { k.UnblockTask(100) })
			var calls []time.Duration
			res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{
				Timeout: time.Minute, Recheck: time.Hour, ProgressInterval: tc.interval,
				Progress: func(elapsed time.Duration, target livepatch.PatchState) {
					if target != livepatch.StateUnpatched {
						t.Errorf("progress target %v, want unpatched", target)
					}
					calls = append(calls, elapsed)
					if len(calls) > len(tc.calls) {
						t.Fatalf("progress at %v, want %v", calls, tc.calls)
					}
				},
			})
			if err != nil || res.Enabled || res.Noticed != livepatch.NoticedRecheck || res.Elapsed != 3*time.Second {
				t.Fatalf("WaitTransition = %+v, %v; want unpatched at 3s, noticed by the progress read", res, err)
			}
			if !slices.Equal(calls, tc.calls) {
				t.Fatalf("progress at %v, want %v", calls, tc.calls)
			}
		})
	}
}

// SignalAfter 0 never signals; a positive one without OnSignal signals
// all the same.
func TestWaitOnTheKernelClockSignalAfter(t *testing.T) {
	k, c := onFake(t, fakekernel.Linux4_15, "a")
	k.BlockTask(100)
	if err := c.Disable("a"); err != nil {
		t.Fatal(err)
	}
	called := false
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{
		Timeout: 3 * time.Second, OnSignal: func(error) { called = true },
	})
	if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != 3*time.Second || called {
		t.Fatalf("WaitTransition = %+v, %v, signalled %v; want ErrStalled at 3s, no signal", res, err, called)
	}
	if slices.Contains(k.Messages(), "livepatch: signaling remaining tasks") {
		t.Errorf("the kernel signalled: log %q", k.Messages())
	}
	res, err = c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 3 * time.Second, SignalAfter: time.Second})
	if !errors.Is(err, livepatch.ErrStalled) || !slices.Contains(k.Messages(), "livepatch: signaling remaining tasks") {
		t.Errorf("WaitTransition = %+v, %v; want ErrStalled after a signal: log %q", res, err, k.Messages())
	}
}

// Another patch's completion record is only a reason to look once.
func TestWaitOnTheKernelClockOtherPatchCompletes(t *testing.T) {
	k, c := stalledOnFake(t)
	k.After(1500*time.Millisecond, func() { k.Printk(5, "livepatch: 'b': patching complete") })
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 3 * time.Second, Recheck: time.Hour})
	// At once, on the record, at the deadline.
	if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != 3*time.Second || res.Checks != 3 {
		t.Fatalf("WaitTransition = %+v, %v; want ErrStalled at 3s after 3 reads", res, err)
	}
}

// After the patch's completion record the wait reads the attribute for a
// grace period (the kernel logs the completion just before it clears the
// transition), within the wait's timeout, and goes back to the log when
// the attribute does not confirm it.
func TestWaitOnTheKernelClockCompletionGrace(t *testing.T) {
	for _, tc := range []struct {
		record, timeout time.Duration
	}{
		{1500 * time.Millisecond, 2 * time.Second}, // the grace ends at the timeout
		{time.Second, 5 * time.Second},             // back to the log after the grace
	} {
		k, c := stalledOnFake(t)
		k.After(tc.record, func() { k.Printk(5, "livepatch: 'a': unpatching complete") })
		res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: tc.timeout, Recheck: time.Hour})
		if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != tc.timeout {
			t.Errorf("record at %v: WaitTransition = %+v, %v; want ErrStalled at %v", tc.record, res, err, tc.timeout)
		}
	}
	// Without a timeout too: the attribute changes during the grace, with
	// the log held since, and the wait notices it there.
	k, c := stalledOnFake(t)
	k.After(2500*time.Millisecond, func() {
		k.Printk(5, "livepatch: 'a': unpatching complete")
		k.UnblockTask(100)
		k.HoldLog()
	})
	defer k.ReleaseLog()
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Recheck: 10 * time.Second})
	if err != nil || res.Enabled || res.Noticed != livepatch.NoticedLog || res.Elapsed < 3*time.Second || res.Elapsed > 3500*time.Millisecond {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched, noticed after the record at 3s", res, err)
	}
}

// A read error of the attribute after a completion record ends the wait
// then, with the error.
func TestWaitOnTheKernelClockReadErrorAfterRecord(t *testing.T) {
	k, c := stalledOnFake(t)
	k.After(time.Second, func() {
		k.InjectReadFault(filepath.Join(k.SysRoot(), "kernel", "livepatch", "a", "transition"), unix.EIO)
		k.Printk(5, "livepatch: 'a': unpatching complete")
	})
	res, err := c.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 5 * time.Second, Recheck: time.Hour})
	if !errors.Is(err, unix.EIO) || errors.Is(err, livepatch.ErrStalled) || res.Elapsed != time.Second {
		t.Fatalf("WaitTransition = %+v, %v; want EIO at 1s", res, err)
	}
}

// A polling wait whose context ends as the transition ends still takes
// its last look, and reports the end rather than the interruption.
func TestWaitOnTheKernelClockPollInterruptedAtTheEnd(t *testing.T) {
	k, c := stalledOnFake(t)
	k.InjectLogOpenFault(unix.EPERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k.After(1500*time.Millisecond, func() {
		k.UnblockTask(100)
		k.Tick()
		cancel()
	})
	res, err := c.WaitTransition(ctx, "a", livepatch.WaitOptions{Timeout: time.Minute})
	if err != nil || res.Enabled || res.Noticed != livepatch.NoticedRecheck {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched, seen by the last look", res, err)
	}
}
