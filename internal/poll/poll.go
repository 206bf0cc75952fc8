package poll

import (
	"context"
	"time"
)

// Default back-off parameters. A poll loop over a sysfs attribute costs a
// few microseconds per check, so checking every 10 ms costs well under 1%
// of a CPU while noticing a change within about 10 ms, which is what a
// user waiting on a transition perceives as immediate. (A loop polling
// once a second noticed completion up to a second late in the real-kernel
// suite's guests.)
const (
	DefaultInitial = 1 * time.Millisecond
	DefaultMax     = 10 * time.Millisecond
	DefaultFactor  = 2.0
)

// Clock is the time a wait reads and sleeps in: [System] for the running
// kernel, the test double's own for a fake kernel, whose retry work runs
// on that clock. A wait on a test double then takes the same steps however
// fast or loaded the machine is.
type Clock interface {
	Now() time.Time
	// Sleep returns after d, or ctx's error as soon as ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// System is the system's clock.
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Options tune the back-off of [Until]. The zero value gives the defaults.
type Options struct {
	// Initial is the sleep after the first unsuccessful check (default 1 ms).
	Initial time.Duration
	// Max caps the sleep between checks (default 10 ms). It bounds the
	// latency with which a change is noticed, plus timer slack.
	Max time.Duration
	// Factor multiplies the sleep after each unsuccessful check (default 2;
	// values below 1 are treated as 1, i.e. a fixed interval).
	Factor float64
	// Timeout, when positive, ends the wait with
	// [context.DeadlineExceeded] once it has passed on Clock, after one
	// last check at the deadline.
	Timeout time.Duration
	// Clock measures the timeout and sleeps (nil = [System]).
	Clock Clock
}

func (o Options) withDefaults() Options {
	if o.Initial <= 0 {
		o.Initial = DefaultInitial
	}
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.Max < o.Initial {
		o.Max = o.Initial
	}
	if o.Factor == 0 {
		o.Factor = DefaultFactor
	}
	if o.Factor < 1 {
		o.Factor = 1
	}
	if o.Clock == nil {
		o.Clock = System
	}
	return o
}

// Until calls cond until it reports true or fails, sleeping between calls
// with an exponential back-off from opts.Initial up to opts.Max. It checks
// once immediately. It returns nil when cond reported true, cond's error
// if it failed, [context.DeadlineExceeded] once opts.Timeout has passed,
// or ctx.Err() once ctx is done. Either way a last check is made when the
// time is up, so a condition that became true just before the deadline is
// not reported as a timeout.
//
// The back-off starts small because many waits (a transition with no
// blocking task, a refcount drop after an async free) end within a few
// milliseconds, and it is capped because the wait may also last minutes,
// during which the sleeping goroutine costs nothing.
func Until(ctx context.Context, cond func() (bool, error), opts Options) error {
	opts = opts.withDefaults()
	clock := opts.Clock
	var deadline time.Time
	if opts.Timeout > 0 {
		deadline = clock.Now().Add(opts.Timeout)
	}
	delay := opts.Initial
	for {
		if ok, err := cond(); ok || err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sleep := delay
		if !deadline.IsZero() {
			left := deadline.Sub(clock.Now())
			if left <= 0 {
				return context.DeadlineExceeded
			}
			sleep = min(sleep, left)
		}
		if err := clock.Sleep(ctx, sleep); err != nil {
			if ok, cerr := cond(); ok || cerr != nil {
				return cerr
			}
			return err
		}
		delay = next(delay, opts)
	}
}

// next returns the sleep following d.
func next(d time.Duration, o Options) time.Duration {
	n := time.Duration(float64(d) * o.Factor)
	if n > o.Max || n < d { // n < d: overflow
		return o.Max
	}
	return n
}

// DeadlineClock is a [Clock] that makes the contexts whose deadline is a
// time on it: a test double whose time moves only while klp sleeps on it
// ends such a context where it moves its time (see [WithDeadline]).
type DeadlineClock interface {
	Clock
	WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc)
}

// WithDeadline returns a copy of ctx that is done once clock reaches t, for
// the waits that block in something else than clock's Sleep (a read of the
// kernel log). On [System] (or nil) it is [context.WithDeadline]; a
// [DeadlineClock] makes its own; on any other clock the time left until t
// is measured on the system's.
func WithDeadline(ctx context.Context, clock Clock, t time.Time) (context.Context, context.CancelFunc) {
	switch c := clock.(type) {
	case nil, systemClock:
		return context.WithDeadline(ctx, t)
	case DeadlineClock:
		return c.WithDeadline(ctx, t)
	}
	return context.WithTimeout(ctx, t.Sub(clock.Now()))
}
