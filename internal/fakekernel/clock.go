package fakekernel

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/klp-project/klp/internal/poll"
)

// RetryInterval is how often the kernel's transition work
// (klp_transition_work, one [Kernel.Tick]) runs on the fake's clock: every
// second, as on Linux.
const RetryInterval = time.Second

// clockLimit ends a wait that would never end: a test whose klp waits
// longer than this on the fake's clock fails instead of spinning.
const clockLimit = time.Hour

// clock is the fake kernel's time. It stands still until klp sleeps on it
// (every wait of klp's on a kernel.Live handle does, through its Clock);
// a sleep moves it forward at once, running on the way the kernel's retry
// work at every whole [RetryInterval] and the events tests scheduled with
// [Kernel.After]. What a wait sees therefore depends on the fake's time
// only, never on how fast or loaded the machine is.
type clock struct {
	k  *Kernel
	mu sync.Mutex
	// start is when the kernel was made, now the present; nextTick is the
	// next run of the retry work.
	start, now, nextTick time.Time
	events               []event // by when, then in the order scheduled
}

type event struct {
	when time.Time
	f    func()
}

func newClock(k *Kernel) *clock {
	start := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	return &clock{k: k, start: start, now: start, nextTick: start.Add(RetryInterval)}
}

var _ poll.Clock = (*clock)(nil)

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock d forward, running the retry work and the
// scheduled events that fall in that time in order, each at its own time.
func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	target := c.Now().Add(max(d, 0))
	if err := c.bound(target); err != nil {
		return err
	}
	for c.step(target) {
	}
	return ctx.Err()
}

// bound fails a wait until target beyond clockLimit.
func (c *clock) bound(target time.Time) error {
	if target.Sub(c.start) > clockLimit {
		return fmt.Errorf("fakekernel: a wait went past %v on the fake kernel's clock", clockLimit)
	}
	return nil
}

// step runs the first retry work or scheduled event due by target, at its
// own time, and reports true; with none left, it moves the clock to target
// (never back) and reports false.
func (c *clock) step(target time.Time) bool {
	c.mu.Lock()
	var run func()
	switch {
	case len(c.events) > 0 && !c.events[0].when.After(target) && !c.events[0].when.After(c.nextTick):
		// A test's event at the time of the retry work comes first.
		c.now, run = c.events[0].when, c.events[0].f
		c.events = c.events[1:]
	case !c.nextTick.After(target):
		c.now, run = c.nextTick, c.k.Tick
		c.nextTick = c.nextTick.Add(RetryInterval)
	}
	if run == nil {
		if c.now.Before(target) {
			c.now = target
		}
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()
	run()
	return true
}

// deadlineKey marks a context made by [clock.WithDeadline].
type deadlineKey struct{}

type deadline struct {
	c *clock
	t time.Time
}

// WithDeadline implements poll.DeadlineClock: a context whose deadline is
// t on the fake's clock. The clock moves only while klp sleeps on it, and
// the one wait of klp's that blocks elsewhere is a read of the kernel log:
// a read of the fake's log under such a context sleeps on the clock, event
// by event, until a record comes or the clock reaches t (then the read
// fails with context.DeadlineExceeded, as a read past its deadline does).
func (c *clock) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	return context.WithValue(ctx, deadlineKey{}, deadline{c: c, t: t}), cancel
}

var _ poll.DeadlineClock = (*clock)(nil)

// deadlineOf returns the deadline on c that ctx carries.
func (c *clock) deadlineOf(ctx context.Context) (time.Time, bool) {
	d, ok := ctx.Value(deadlineKey{}).(deadline)
	if !ok || d.c != c {
		return time.Time{}, false
	}
	return d.t, true
}

// after schedules f at d from now.
func (c *clock) after(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, event{when: c.now.Add(d), f: f})
	sort.SliceStable(c.events, func(i, j int) bool { return c.events[i].when.Before(c.events[j].when) })
}

// Clock returns the fake kernel's clock, the one [Kernel.Live] hands to
// klp's waits. See [RetryInterval] and [Kernel.After].
func (k *Kernel) Clock() poll.Clock { return k.clock }

// After runs f once the fake kernel's clock has moved d forward, that is
// while klp sleeps past that time in one of its waits: "the blocking task
// leaves the function after 3 seconds". An event due at the time of a
// retry work runs before it.
func (k *Kernel) After(d time.Duration, f func()) { k.clock.after(d, f) }

// Elapsed returns how far the fake kernel's clock has moved since the
// kernel was made.
func (k *Kernel) Elapsed() time.Duration {
	c := k.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Sub(c.start)
}
