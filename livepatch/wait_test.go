package livepatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
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
