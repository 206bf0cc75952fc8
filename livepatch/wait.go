package livepatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/kernel"
)

// ErrStalled reports a transition that did not complete within the wait's
// timeout. The transition goes on in the kernel; the caller decides whether
// to wait more, reverse it or leave it.
var ErrStalled = errors.New("transition stalled")

// Default intervals of [Control.WaitTransition].
const (
	// DefaultRecheck is how soon a wait that sleeps on the kernel log
	// first reads the transition attribute all the same: a net under the
	// log, for a completion the log did not announce. The interval then
	// doubles up to DefaultRecheckMax: each read wakes the Go runtime's
	// threads, which costs more than the read (under emulation most of
	// the wait's CPU), and the log has announced every completion on the
	// real kernels, so a long stall need not pay a read a second.
	DefaultRecheck    = time.Second
	DefaultRecheckMax = 4 * time.Second
	// DefaultPollMax caps the interval of the polling that replaces the
	// log where it cannot be read: 1 ms doubling to 100 ms, ten reads a
	// second once the transition has run a while. A completion is then
	// noticed within about 100 ms, at a tenth of the cost of a 10 ms poll.
	DefaultPollMax = 100 * time.Millisecond
	// completionGrace bounds the reads that follow the patch's completion
	// record: the kernel logs it just before the attribute changes.
	completionGrace = time.Second
)

// WaitOptions tune [Control.WaitTransition].
type WaitOptions struct {
	// Timeout bounds the wait; 0 waits until ctx is done.
	Timeout time.Duration
	// Progress, when set, is called about every ProgressInterval (default
	// one second) while the transition runs, with the time waited and the
	// state the tasks move to (the patch's enabled value, which a reverse
	// flips). Callers that show progress count the tasks left themselves:
	// a task scan costs too much to run on every call.
	Progress         func(elapsed time.Duration, target PatchState)
	ProgressInterval time.Duration
	// SignalAfter, when positive, writes the patch's signal attribute once
	// the transition has run that long, on kernels that have one (4.15 to
	// 5.0). Later kernels signal the remaining tasks every 15 seconds by
	// themselves. OnSignal reports the attempt and its error, which wraps
	// [ErrUnsupportedAttr] on those kernels.
	SignalAfter time.Duration
	OnSignal    func(err error)
	// Recheck is how soon the transition attribute is first read again
	// while the wait sleeps on the kernel log (default [DefaultRecheck]);
	// the interval doubles up to RecheckMax (default [DefaultRecheckMax],
	// and never less than Recheck).
	Recheck    time.Duration
	RecheckMax time.Duration
	// Poll tunes the polling where the kernel log cannot be read (default
	// 1 ms doubling to [DefaultPollMax]). Its Clock is the one the wait
	// runs on (default: the kernel handle's): the timeout, the rechecks,
	// the progress and the signal are measured on it, and the wait sleeps
	// in it; Timeout above is the wait's timeout (Poll.Timeout is unused).
	Poll poll.Options
	// OnLost, when set, is called each time the kernel log overwrote
	// records before the wait read them (it then reads the attribute).
	OnLost func()
}

// Noticed says what made a wait read the attribute that showed the end of
// the transition.
type Noticed int

const (
	// NoticedAtOnce: the patch was not in transition when the wait began.
	NoticedAtOnce Noticed = iota
	// NoticedLog: a livepatch record of the kernel log (the patch's
	// completion, normally).
	NoticedLog
	// NoticedLost: records were overwritten before the wait read them
	// (the log was flooded), so it read the attribute.
	NoticedLost
	// NoticedRecheck: the periodic read of the attribute while sleeping
	// on the log, or the last one when the wait ended.
	NoticedRecheck
	// NoticedPoll: the polling where the log could not be read.
	NoticedPoll
)

// String names how a completion was noticed.
func (n Noticed) String() string {
	switch n {
	case NoticedAtOnce:
		return "the first read"
	case NoticedLog:
		return "the kernel log"
	case NoticedLost:
		return "a loss of kernel log records"
	case NoticedRecheck:
		return "a periodic read"
	case NoticedPoll:
		return "polling"
	}
	return fmt.Sprintf("Noticed(%d)", int(n))
}

// WaitResult says how a wait ended.
type WaitResult struct {
	// Elapsed is the time waited.
	Elapsed time.Duration
	// Enabled is the patch's enabled value when the transition ended:
	// true when it ended patched, false when unpatched (a disable, or a
	// reversed load). A patch whose directory is gone ended unpatched
	// (disabled and freed) or replaced.
	Enabled bool
	// Gone is true when the patch's directory disappeared.
	Gone bool
	// Noticed says what led to the read that saw the end.
	Noticed Noticed
	// LogErr is why the wait polled instead of sleeping on the kernel
	// log (it wraps [kernel.ErrLogUnavailable] when the log could not be
	// opened), nil when it slept on the log throughout.
	LogErr error
	// Checks counts the reads of the transition attribute; Lost the times
	// the kernel log overwrote records before the wait read them.
	Checks int
	Lost   int
}

// WaitTransition waits until the named patch is no longer in transition.
//
// sysfs does not notify anyone of a change of the transition attribute,
// but the kernel logs the end of every transition ("livepatch: '<patch>':
// patching complete", or unpatching), and a read of /dev/kmsg sleeps until
// the next record. So the wait sleeps on the kernel log and reads the
// attribute when a livepatch record arrives, when records were lost, and
// after opts.Recheck, then ever less often (up to opts.RecheckMax): the
// record is a reason to look, the attribute is the answer. Where the log cannot be read (no CAP_SYSLOG with
// kernel.dmesg_restrict, a handle without a log), it polls the attribute
// instead (opts.Poll). The cost of the wait does not depend on the number
// of tasks: it never scans them.
//
// It returns [ErrStalled] (with the result so far) when opts.Timeout passes
// first, and ctx's error when ctx is done. A patch that is not in
// transition returns at once.
func (c Control) WaitTransition(ctx context.Context, name string, opts WaitOptions) (WaitResult, error) {
	dir, err := c.PatchPath(name)
	if err != nil {
		return WaitResult{}, err
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = time.Second
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.RecheckMax <= 0 {
		opts.RecheckMax = DefaultRecheckMax
	}
	opts.RecheckMax = max(opts.RecheckMax, opts.Recheck)
	if opts.Poll.Max <= 0 {
		opts.Poll.Max = DefaultPollMax
	}
	clock := opts.Poll.Clock
	if clock == nil {
		clock = c.live.Clock()
	}
	w := &waiter{c: c, dir: dir, name: filepath.Base(dir), opts: opts, clock: clock, start: clock.Now()}
	err = w.run(ctx)
	w.res.Elapsed = clock.Now().Sub(w.start)
	switch {
	case err == nil:
		return w.res, nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return w.res, fmt.Errorf("wait for %s: %w after %s", w.name, ErrStalled, w.res.Elapsed.Round(time.Millisecond))
	}
	return w.res, err
}

// waiter is one WaitTransition.
type waiter struct {
	c     Control
	dir   string
	name  string
	opts  WaitOptions
	clock poll.Clock // the kernel handle's: every time below is on it
	start time.Time
	res   WaitResult

	signalled bool
	target    PatchState // the state the tasks move to, as last read
}

// run waits; it returns nil once the transition ended, a read error, or
// ctx's error.
func (w *waiter) run(ctx context.Context) error {
	// Open the log before the first read: a completion after that read
	// is then a record after the watch's position.
	watch, err := w.c.live.WatchLog()
	if err != nil {
		w.res.LogErr = err
		watch = nil
	} else {
		defer func() {
			if watch != nil {
				watch.Close()
			}
		}()
	}
	if done, err := w.check(NoticedAtOnce); done || err != nil {
		return err
	}
	delay := w.opts.Poll.Initial
	if delay <= 0 {
		delay = poll.DefaultInitial
	}
	recheck := w.opts.Recheck
	nextCheck := recheck // since start: the next read of the attribute
	if watch == nil {
		nextCheck = delay
	}
	nextProgress := w.opts.ProgressInterval
	for {
		elapsed := w.clock.Now().Sub(w.start)
		timedOut := w.opts.Timeout > 0 && elapsed >= w.opts.Timeout
		if ctx.Err() != nil || timedOut {
			// One last look, so that a transition that ended just
			// before the deadline is not reported as stalled.
			if done, err := w.check(NoticedRecheck); done || err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			return context.DeadlineExceeded
		}
		if w.opts.SignalAfter > 0 && !w.signalled && elapsed >= w.opts.SignalAfter {
			// Without the attribute (5.1+) the kernel signals by
			// itself; OnSignal hears ErrUnsupportedAttr so the caller
			// can say so.
			w.signalled = true
			err := w.c.Signal(w.name)
			if w.opts.OnSignal != nil {
				w.opts.OnSignal(err)
			}
		}
		if w.opts.Progress != nil && elapsed >= nextProgress {
			nextProgress = elapsed + w.opts.ProgressInterval
			how := NoticedRecheck
			if watch == nil {
				how = NoticedPoll
			}
			if done, err := w.check(how); done || err != nil {
				return err
			}
			w.opts.Progress(elapsed, w.target)
		}
		if elapsed >= nextCheck {
			how := NoticedRecheck
			if watch == nil {
				how = NoticedPoll
			}
			if done, err := w.check(how); done || err != nil {
				return err
			}
			if watch == nil {
				delay = nextDelay(delay, w.opts.Poll)
				nextCheck = elapsed + delay
			} else {
				recheck = min(2*recheck, w.opts.RecheckMax)
				nextCheck = elapsed + recheck
			}
		}
		due := nextCheck
		if w.opts.Progress != nil {
			due = min(due, nextProgress)
		}
		if w.opts.SignalAfter > 0 && !w.signalled {
			due = min(due, w.opts.SignalAfter)
		}
		if w.opts.Timeout > 0 {
			due = min(due, w.opts.Timeout)
		}
		if watch == nil {
			if err := w.clock.Sleep(ctx, due-elapsed); err != nil && ctx.Err() == nil {
				return err
			}
			continue
		}
		dctx, cancel := poll.WithDeadline(ctx, w.clock, w.start.Add(due))
		ev, err := w.readLog(dctx, watch)
		cancel()
		switch ev {
		case logComplete:
			if done, err := w.afterCompletion(ctx); done || err != nil {
				return err
			}
		case logOther:
			if done, err := w.check(NoticedLog); done || err != nil {
				return err
			}
		case logLost:
			w.res.Lost++
			if w.opts.OnLost != nil {
				w.opts.OnLost()
			}
			if done, err := w.check(NoticedLost); done || err != nil {
				return err
			}
		case logBroken:
			// Poll from now on, starting at once.
			w.res.LogErr = err
			watch.Close()
			watch = nil
			delay = w.opts.Poll.Initial
			if delay <= 0 {
				delay = poll.DefaultInitial
			}
			nextCheck = w.clock.Now().Sub(w.start)
		}
	}
}

// logEvent is what reading the log brought.
type logEvent int

const (
	logDue      logEvent = iota // the deadline passed or ctx is done
	logComplete                 // the patch's completion record
	logOther                    // another livepatch record
	logLost                     // records were overwritten
	logBroken                   // the log cannot be read any more
)

// livepatchRecord is the start of the text of a livepatch record, after the
// prefix of /dev/kmsg's format.
var livepatchRecord = []byte(";" + logPrefix)

// readLog reads records until one concerns live patching, records are
// lost, or ctx ends. Other records (a flood of them, even) cost a read and
// a comparison each.
func (w *waiter) readLog(ctx context.Context, watch kernel.LogWatch) (logEvent, error) {
	for {
		b, err := watch.Next(ctx)
		switch {
		case errors.Is(err, kernel.ErrLogLost):
			return logLost, nil
		case err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
			// A watch may see the deadline pass before ctx's own
			// timer says so.
			return logDue, nil
		case err != nil:
			return logBroken, err
		}
		// The text follows the first ';' of the record's prefix.
		i := bytes.IndexByte(b, ';')
		if i < 0 || !bytes.HasPrefix(b[i:], livepatchRecord) {
			continue
		}
		rec, err := kernel.ParseKmsgRecord(b)
		if err != nil {
			continue
		}
		ev, _ := ParseLogEvent(rec.Message)
		if ev.Kind == EventComplete && ev.Patch == w.name {
			return logComplete, nil
		}
		return logOther, nil
	}
}

// afterCompletion reads the attribute after the patch's completion record
// until it shows the end: the kernel logs the completion just before it
// clears the transition, so the first read may come too early. It gives up
// after completionGrace (a new transition of the same patch may have
// started since) and the wait goes on.
func (w *waiter) afterCompletion(ctx context.Context) (bool, error) {
	grace := completionGrace
	if w.opts.Timeout > 0 {
		// Within the wait's own timeout, as the rest of the wait.
		grace = max(min(grace, w.opts.Timeout-w.clock.Now().Sub(w.start)), time.Nanosecond)
	}
	done := false
	err := poll.Until(ctx, func() (bool, error) {
		var err error
		done, err = w.check(NoticedLog)
		return done, err
	}, poll.Options{Initial: 500 * time.Microsecond, Max: 10 * time.Millisecond, Timeout: grace, Clock: w.clock})
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
		return false, nil // not over yet, or ctx ended: the loop sees to it
	}
	return done, err
}

// check reads the transition attribute (and, when the transition ended or
// progress is shown, enabled); it reports whether the transition ended and
// records how in the result.
func (w *waiter) check(how Noticed) (bool, error) {
	w.res.Checks++
	c := w.c
	inTransition, err := c.k.ReadBool(filepath.Join(w.dir, "transition"))
	if errors.Is(err, unix.ENODEV) {
		// kernfs answers ENODEV for the attributes of a patch it is
		// removing, before the files go.
		w.res.Gone, w.res.Enabled, w.res.Noticed = true, false, how
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		// The directory goes away asynchronously after a disable or a
		// replace completes.
		if !c.k.Exists(w.dir) {
			w.res.Gone, w.res.Enabled, w.res.Noticed = true, false, how
			return true, nil
		}
		// Before 4.12 there was no transition: changes are immediate.
		inTransition, err = false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wait for %s: %w", w.name, err)
	}
	if inTransition && w.opts.Progress == nil {
		return false, nil
	}
	enabled, err := c.k.ReadBool(filepath.Join(w.dir, "enabled"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		if inTransition {
			return false, nil // it is going: the next look says so
		}
		w.res.Gone, w.res.Noticed = true, how
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("wait for %s: %w", w.name, err)
	}
	if inTransition {
		w.target = StateUnpatched
		if enabled {
			w.target = StatePatched
		}
		return false, nil
	}
	w.res.Enabled, w.res.Noticed = enabled, how
	return true, nil
}

// nextDelay is the polling interval after d: doubled (or as opts.Factor
// says), capped at opts.Max.
func nextDelay(d time.Duration, o poll.Options) time.Duration {
	f := o.Factor
	if f == 0 {
		f = poll.DefaultFactor
	}
	n := max(time.Duration(float64(d)*f), d)
	return min(n, o.Max)
}
