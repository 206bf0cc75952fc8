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

	"golang.org/x/sys/unix"
)

func TestUntilImmediate(t *testing.T) {
	calls := 0
	err := Until(context.Background(), func() (bool, error) { calls++; return true, nil }, Options{})
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
	}, Options{})
	if !errors.Is(err, boom) || calls != 3 {
		t.Errorf("err %v, calls %d", err, calls)
	}
}

func TestUntilTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	start := time.Now()
	err := Until(ctx, func() (bool, error) { calls++; return false, nil }, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	// 1 + 1,2,4,8 ms + ~3-4 × 10 ms + the last check: no busy loop.
	if calls < 4 || calls > 15 {
		t.Errorf("%d checks in %v", calls, time.Since(start))
	}
}

func TestUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Until(ctx, func() (bool, error) { return false, nil }, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// A condition that became true by the deadline is not a timeout.
func TestUntilLastCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := Until(ctx, func() (bool, error) { return ctx.Err() != nil, nil }, Options{Initial: time.Hour})
	if err != nil {
		t.Errorf("err = %v", err)
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

func TestUntilLatency(t *testing.T) {
	var flag atomic.Bool
	var flipped atomic.Int64
	go func() {
		time.Sleep(60 * time.Millisecond)
		flipped.Store(time.Now().UnixNano())
		flag.Store(true)
	}()
	if err := Until(context.Background(), func() (bool, error) { return flag.Load(), nil }, Options{}); err != nil {
		t.Fatal(err)
	}
	lat := time.Since(time.Unix(0, flipped.Load()))
	if lat > 100*time.Millisecond { // 10 ms cap plus generous scheduling slack
		t.Errorf("noticed %v late", lat)
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
