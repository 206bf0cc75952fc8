package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Only the kernel's own log device is watched: a missing file, a regular
// file, a FIFO and /dev/null (bind-mounted over /dev/kmsg, it would read as
// an endless log that ends at once) are not the log.
func TestDevKmsgNotTheLog(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "kmsg")
	if err := os.WriteFile(regular, []byte("6,1,1,-;old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), regular, fifo, "/dev/null"} {
		w, err := DevKmsg{Path: path}.WatchLog()
		if !errors.Is(err, ErrLogUnavailable) {
			t.Errorf("WatchLog(%s) = %v, %v; want ErrLogUnavailable", path, w, err)
		}
		if w != nil {
			w.Close()
		}
	}
	if _, err := (DevKmsg{Path: filepath.Join(dir, "missing")}).WatchLog(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing log: %v, want ErrNotExist", err)
	}
}

// A live handle without a log seam has no log.
func TestWatchLogNoSeam(t *testing.T) {
	h, err := NewHandle(Roots{Sys: t.TempDir(), Proc: t.TempDir()}, OSFiles{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Simulate(h, Seams{}).WatchLog(); !errors.Is(err, ErrLogUnavailable) || !errors.Is(err, ErrNotLive) {
		t.Errorf("WatchLog without a seam: %v", err)
	}
}

// watchRealKmsg watches the real /dev/kmsg until the test ends; it skips
// only where this process cannot read the device (checked without
// WatchLog), so a WatchLog that fails there fails the test.
func watchRealKmsg(t *testing.T) LogWatch {
	t.Helper()
	if !readableKmsg() {
		t.Skip("no readable /dev/kmsg (root or CAP_SYSLOG)")
	}
	w, err := DevKmsg{Path: "/dev/kmsg"}.WatchLog()
	if err != nil {
		t.Fatalf("WatchLog of the real /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// The real /dev/kmsg (root, or CAP_SYSLOG): a watch returns the records
// logged after it was opened, sleeps until the next one, and ends its wait
// at the context's deadline or cancellation.
func TestDevKmsgReal(t *testing.T) {
	w := watchRealKmsg(t)
	out, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
	defer out.Close()
	canary := "klp kernel test canary " + time.Now().Format(time.RFC3339Nano)
	if _, err := out.WriteString("<6>" + canary + "\n"); err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		b, err := next(t, w, ctx)
		if err != nil {
			t.Fatalf("Next: %v (the canary never came)", err)
		}
		// Every record the kernel hands out parses.
		rec, err := ParseKmsgRecord(b)
		if err != nil {
			t.Fatalf("Next returned %q: %v", b, err)
		}
		if strings.Contains(rec.Message, canary) {
			break
		}
	}
	// Nothing more of ours: a short deadline ends the wait (other
	// records of the host may come first).
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	for {
		_, err := next(t, w, dctx)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Next with a deadline: %v", err)
		}
	}
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); ccancel() }()
	for {
		_, err := next(t, w, cctx)
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			t.Fatalf("Next, cancelled: %v", err)
		}
	}
}

// next is w.Next, failing the test if it has not returned after a minute:
// a watch that lost its deadline would otherwise park the test until go
// test's own limit (ten minutes per mutant under make mutate).
func next(t *testing.T, w LogWatch, ctx context.Context) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := w.Next(ctx)
		done <- result{append([]byte(nil), b...), err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(time.Minute):
		t.Fatalf("Next has not returned after a minute")
		return nil, nil
	}
}

// deadlineOnly is a context whose deadline passes without it ever saying
// so: the read deadline can fire before a context's own timer does, and
// Next must then report the deadline, not an empty record.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (d deadlineOnly) Deadline() (time.Time, bool) { return d.at, true }

func TestDevKmsgDeadlineBeforeContext(t *testing.T) {
	w := watchRealKmsg(t)
	ctx := deadlineOnly{Context: context.Background(), at: time.Now().Add(20 * time.Millisecond)}
	for {
		b, err := next(t, w, ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return
		}
		// Other records of the host may come first; each is a record.
		if _, perr := ParseKmsgRecord(b); err != nil || perr != nil {
			t.Fatalf("Next past the deadline = %q, %v", b, err)
		}
	}
}

// The log of a handle from OpenLive keeps its watch for the next wait: a
// second watch reuses the descriptor, starts after the records logged
// meanwhile, and a watch closed while another is kept is closed for good.
func TestKeptKmsgReal(t *testing.T) {
	if !readableKmsg() {
		t.Skip("no readable /dev/kmsg (root or CAP_SYSLOG)")
	}
	out, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
	defer out.Close()
	logLine := func(s string) {
		t.Helper()
		if _, err := out.WriteString("<6>" + s + "\n"); err != nil {
			t.Skipf("cannot write /dev/kmsg: %v", err)
		}
	}
	k := &keptKmsg{dev: DevKmsg{Path: "/dev/kmsg"}}
	w1, err := k.WatchLog()
	if err != nil {
		t.Fatalf("WatchLog: %v", err)
	}
	fd1 := w1.(*keptWatch).w.f
	// A second watch while the first is open has a descriptor of its own.
	w2, err := k.WatchLog()
	if err != nil {
		t.Fatalf("WatchLog beside another: %v", err)
	}
	fd2 := w2.(*keptWatch).w.f
	if fd2 == fd1 {
		t.Fatal("two open watches share a descriptor")
	}
	if err := w1.Close(); err != nil || k.idle == nil || k.idle.f != fd1 {
		t.Fatalf("Close of the first: %v; kept %v, want its descriptor", err, k.idle)
	}
	if err := w1.Close(); err != nil || k.idle.f != fd1 {
		t.Fatalf("a second Close: %v, kept %v", err, k.idle)
	}
	if _, err := w1.Next(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Next after Close = %v, want os.ErrClosed", err)
	}
	// One is kept: the second is closed for good.
	if err := w2.Close(); err != nil || k.idle.f != fd1 {
		t.Fatalf("Close of the second: %v; kept %v", err, k.idle)
	}
	if _, err := fd2.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the second watch's descriptor: %v, want closed", err)
	}
	stamp := time.Now().Format(time.RFC3339Nano)
	before := "klp kept-watch test, logged between the waits " + stamp
	after := "klp kept-watch test, logged during the second wait " + stamp
	logLine(before)
	w3, err := k.WatchLog()
	if err != nil {
		t.Fatalf("WatchLog again: %v", err)
	}
	t.Cleanup(func() { w3.Close() })
	if w3.(*keptWatch).w.f != fd1 || k.idle != nil {
		t.Fatalf("the kept descriptor was not reused (kept %v)", k.idle)
	}
	logLine(after)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		b, err := next(t, w3, ctx)
		if err != nil {
			t.Fatalf("Next: %v (the record never came)", err)
		}
		rec, err := ParseKmsgRecord(b)
		if err != nil {
			t.Fatalf("Next returned %q: %v", b, err)
		}
		if strings.Contains(rec.Message, before) {
			t.Fatalf("the reused watch returned a record logged before it was opened: %q", rec.Message)
		}
		if strings.Contains(rec.Message, after) {
			break
		}
	}
}

// OpenLive's handle watches the log through a keptKmsg.
func TestOpenLiveKeepsLogWatch(t *testing.T) {
	if !runningKernelFS(t) {
		t.Skip("no sysfs at /sys and procfs at /proc here")
	}
	l, err := OpenLive(Roots{})
	if err != nil {
		t.Fatalf("OpenLive: %v", err)
	}
	if k, ok := l.seams.Log.(*keptKmsg); !ok || k.dev.Path != "/dev/kmsg" {
		t.Errorf("OpenLive's log = %#v, want a keptKmsg of /dev/kmsg", l.seams.Log)
	}
}
