package poll

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"golang.org/x/sys/unix"
)

func TestUntilImmediate(t *testing.T) {
	calls := 0
	err := Until(context.Background(), func() (bool, error) { calls++; return true, nil }, Options{Clock: newClock()})
	if err != nil || calls != 1 {
		t.Errorf("err %v, calls %d", err, calls)
	}
}

func TestUntilError(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := Until(context.Background(), func() (bool, error) {
		calls++
		if calls == 3 {
			return false, boom
		}
		return false, nil
	}, Options{Clock: newClock()})
	if !errors.Is(err, boom) || calls != 3 {
		t.Errorf("err %v, calls %d", err, calls)
	}
}

// clock is a fake Clock: Sleep advances it at once and records the sleep;
// then calls at, which may change what the condition sees or cancel ctx.
type clock struct {
	now    time.Time
	sleeps []time.Duration
	at     func(now time.Time)
}

func newClock() *clock { return &clock{now: time.Unix(1000, 0)} }

func (c *clock) Now() time.Time { return c.now }

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	if c.at != nil {
		c.at(c.now)
	}
	return ctx.Err()
}

func ms(ds ...int) []time.Duration {
	var out []time.Duration
	for _, d := range ds {
		out = append(out, time.Duration(d)*time.Millisecond)
	}
	return out
}

// TestUntilTimeout: the back-off runs 1, 2, 4, 8 ms, then 10 ms, and the
// last sleep ends exactly at the deadline, where one last check is made.
func TestUntilTimeout(t *testing.T) {
	c := newClock()
	start := c.now
	var checks []time.Duration
	err := Until(context.Background(), func() (bool, error) {
		checks = append(checks, c.now.Sub(start))
		return false, nil
	}, Options{Timeout: 50 * time.Millisecond, Clock: c})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if diff := cmp.Diff(ms(1, 2, 4, 8, 10, 10, 10, 5), c.sleeps); diff != "" {
		t.Errorf("sleeps: unexpected diff (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ms(0, 1, 3, 7, 15, 25, 35, 45, 50), checks); diff != "" {
		t.Errorf("checks at: unexpected diff (-want +got):\n%s", diff)
	}
}

func TestUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := Until(ctx, func() (bool, error) { calls++; return false, nil }, Options{Clock: newClock()})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("err = %v after %d checks, want Canceled after 1", err, calls)
	}
}

// TestUntilLastCheck: a condition that became true by the deadline, or
// while ctx was being cancelled, is not a timeout.
func TestUntilLastCheck(t *testing.T) {
	c := newClock()
	deadline := c.now.Add(20 * time.Millisecond)
	err := Until(context.Background(), func() (bool, error) { return !c.now.Before(deadline), nil }, Options{Initial: time.Hour, Timeout: 20 * time.Millisecond, Clock: c})
	if err != nil || !c.now.Equal(deadline) {
		t.Errorf("err = %v at %v, want nil at the deadline", err, c.now.Sub(deadline))
	}

	c = newClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := false
	c.at = func(time.Time) { done = true; cancel() }
	if err := Until(ctx, func() (bool, error) { return done, nil }, Options{Clock: c}); err != nil {
		t.Errorf("true when ctx ended: err = %v", err)
	}
	c = newClock()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	c.at = func(time.Time) { cancel() }
	boom := errors.New("boom")
	checks := 0
	err = Until(ctx, func() (bool, error) {
		checks++
		if checks == 2 {
			return false, boom
		}
		return false, nil
	}, Options{Clock: c})
	if !errors.Is(err, boom) {
		t.Errorf("last check failed: err = %v, want boom", err)
	}
}

// TestUntilLatency: a change is noticed at most Max after it happens,
// however long the wait has run.
func TestUntilLatency(t *testing.T) {
	for _, after := range []time.Duration{0, time.Millisecond, 60 * time.Millisecond, 10 * time.Minute} {
		c := newClock()
		flip := c.now.Add(after)
		err := Until(context.Background(), func() (bool, error) { return !c.now.Before(flip), nil }, Options{Clock: c})
		if late := c.now.Sub(flip); err != nil || late < 0 || late >= DefaultMax {
			t.Errorf("change after %v: err %v, noticed %v late", after, err, late)
		}
	}
}

// TestSystemClock: the system clock's Sleep sleeps, and returns at once
// with ctx's error when ctx is done.
func TestSystemClock(t *testing.T) {
	before := time.Now()
	now := System.Now()
	if now.Before(before) || now.After(time.Now()) {
		t.Errorf("System.Now() = %v, not between two time.Now()", now)
	}
	if err := System.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := System.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with ctx done: %v", err)
	}
	// Until on the system clock, with no clock given: its timeout ends
	// the wait.
	if err := Until(context.Background(), func() (bool, error) { return false, nil }, Options{Timeout: time.Millisecond}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Until with a timeout on the system clock: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	o := Options{}.withDefaults()
	var got []time.Duration
	d := o.Initial
	for i := 0; i < 6; i++ {
		got = append(got, d)
		d = next(d, o)
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("sequence %v", got)
		}
	}
	fixed := Options{Initial: 5 * time.Millisecond, Factor: 0.5}.withDefaults()
	if n := next(5*time.Millisecond, fixed); n != 5*time.Millisecond {
		t.Errorf("factor < 1: %v", n)
	}
	big := Options{Initial: time.Hour, Max: time.Duration(1<<63 - 1), Factor: 1e10}.withDefaults()
	if n := next(time.Hour, big); n != big.Max {
		t.Errorf("overflow: %v", n)
	}
	if o := (Options{Initial: time.Second, Max: time.Millisecond}).withDefaults(); o.Max != time.Second {
		t.Errorf("Max below Initial: %v", o.Max)
	}
}

// BenchmarkUntil measures how late a change is noticed and what waiting
// costs, for waits of several lengths, with the default back-off and,
// for comparison, fixed 1 ms and 100 ms intervals. The condition reads a
// small file, as polling a sysfs attribute does. Metrics:
//
//	late-ms   mean delay between the change and Until returning
//	max-ms    worst delay
//	polls     checks per wait
//	cpu-%     process CPU time (user+sys) / wall time while waiting
func BenchmarkUntil(b *testing.B) {
	for _, wait := range []time.Duration{2 * time.Millisecond, 50 * time.Millisecond, 500 * time.Millisecond} {
		for _, cfg := range []struct {
			name string
			opts Options
		}{
			{"backoff", Options{}},
			{"fixed1ms", Options{Initial: time.Millisecond, Factor: 1}},
			{"fixed100ms", Options{Initial: 100 * time.Millisecond, Factor: 1}},
		} {
			b.Run(wait.String()+"/"+cfg.name, func(b *testing.B) {
				benchUntil(b, wait, cfg.opts)
			})
		}
	}
}

func benchUntil(b *testing.B, wait time.Duration, opts Options) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, _ = os.MkdirTemp("/dev/shm", "klp-poll-bench-")
		defer os.RemoveAll(dir)
	}
	path := filepath.Join(dir, "transition")
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	var flipped atomic.Int64
	var late, worst time.Duration
	var polls int
	cpu0, wall0 := cpuTime(), time.Now()
	for b.Loop() {
		os.WriteFile(path, []byte("1\n"), 0o644)
		go func() {
			time.Sleep(wait)
			os.WriteFile(path, []byte("0\n"), 0o644)
			flipped.Store(time.Now().UnixNano()) // after the write: file I/O is not poll latency
		}()
		err := Until(context.Background(), func() (bool, error) {
			polls++
			data, err := os.ReadFile(path)
			return string(data) == "0\n", err
		}, opts)
		if err != nil {
			b.Fatal(err)
		}
		for flipped.Load() == 0 { // the reader may see the write before it returns
			runtime.Gosched()
		}
		d := max(time.Since(time.Unix(0, flipped.Swap(0))), 0)
		late += d
		worst = max(worst, d)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	b.ReportMetric(float64(late.Microseconds())/float64(b.N)/1000, "late-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(polls)/float64(b.N), "polls")
	b.ReportMetric(100*float64(cpu)/float64(wall), "cpu-%")
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
