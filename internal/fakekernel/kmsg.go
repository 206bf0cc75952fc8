package fakekernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klp-project/klp/kernel"
)

// DefaultLogCapacity is how many records the fake kernel log holds by
// default.
const DefaultLogCapacity = 2048

// klog is the fake kernel's log: every record, formatted as /dev/kmsg
// shows it, and the watchers' view of it. It has its own lock, so that a
// watcher may read a record while the kernel is still busy with what it
// logged: the kernel prints "'p': patching complete" before it clears the
// transition, and the fake renders the transition attribute only once the
// whole operation is done, so a watcher can see the record first, as on a
// real kernel.
type klog struct {
	mu       sync.Mutex
	lines    []string // every record; the index is its sequence number
	msgs     []string
	capacity int
	visible  int           // records a watcher may read: all, unless held
	held     bool          // HoldLog: new records are not shown yet
	wake     chan struct{} // closed when records become visible
	openErr  error         // WatchLog fails with this
	readErr  error         // LogWatch.Next fails with this
	waiting  int           // watchers waiting in Next
	sleeps   int           // times a watcher began to wait
	watches  int           // watches open
}

func (l *klog) init(capacity int) {
	if capacity <= 0 {
		capacity = DefaultLogCapacity
	}
	l.capacity = capacity
	l.wake = make(chan struct{})
}

// append logs a record and returns its line.
func (l *klog) append(level int, at time.Duration, msg string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := fmt.Sprintf("%d,%d,%d,-;%s\n", level, len(l.lines), at.Microseconds(), escapeKmsg(msg))
	l.lines = append(l.lines, line)
	l.msgs = append(l.msgs, msg)
	if !l.held {
		l.show()
	}
	return line
}

// show makes every record visible and wakes the watchers.
func (l *klog) show() {
	l.visible = len(l.lines)
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *klog) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// oldest is the sequence number of the oldest record the ring still holds.
func (l *klog) oldest() int { return max(0, len(l.lines)-l.capacity) }

// WatchLog implements kernel.LogWatcher: a watch positioned after the
// newest record, as /dev/kmsg is after SEEK_END. It fails as injected with
// [Kernel.InjectLogOpenFault].
func (k *Kernel) WatchLog() (kernel.LogWatch, error) {
	l := &k.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.openErr != nil {
		path := filepath.Join(k.dev, "kmsg")
		return nil, fmt.Errorf("%w: %w", kernel.ErrLogUnavailable, &os.PathError{Op: "open", Path: path, Err: l.openErr})
	}
	l.watches++
	return &logWatch{l: l, clock: k.clock, seq: len(l.lines)}, nil
}

var _ kernel.LogWatcher = (*Kernel)(nil)

// logWatch is one reader of the fake log.
type logWatch struct {
	l      *klog
	clock  *clock
	seq    int
	closed bool
}

// Next implements kernel.LogWatch with /dev/kmsg's semantics: the next
// record, waiting for one; ErrLogLost once when the ring overwrote records
// this reader had not read, after which it goes on with the oldest one.
//
// Under a context whose deadline is on the fake's clock (made by its
// WithDeadline, as klp's waits on [Kernel.Live] do) it sleeps on that
// clock instead of the machine's: with no record to read, it runs the
// retry work and the scheduled events one by one until one logs a record
// or the clock reaches the deadline (context.DeadlineExceeded).
func (w *logWatch) Next(ctx context.Context) ([]byte, error) {
	l := w.l
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.mu.Lock()
		switch {
		case w.closed:
			l.mu.Unlock()
			return nil, os.ErrClosed
		case l.readErr != nil:
			err := l.readErr
			l.mu.Unlock()
			return nil, fmt.Errorf("watch kernel log: %w", err)
		case w.seq < l.oldest():
			w.seq = l.oldest()
			l.mu.Unlock()
			return nil, fmt.Errorf("watch kernel log: %w", kernel.ErrLogLost)
		case w.seq < l.visible:
			line := l.lines[w.seq]
			w.seq++
			l.mu.Unlock()
			return []byte(line), nil
		}
		if t, ok := w.clock.deadlineOf(ctx); ok {
			l.mu.Unlock()
			if !w.clock.Now().Before(t) {
				return nil, context.DeadlineExceeded
			}
			if err := w.clock.bound(t); err != nil {
				return nil, err
			}
			w.clock.step(t)
			continue
		}
		wake := l.wake
		l.waiting++
		l.sleeps++
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-wake:
		}
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}
}

func (w *logWatch) Close() error {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if w.closed {
		return os.ErrClosed
	}
	w.closed = true
	w.l.watches--
	return nil
}

// Printk logs a record, as a module or a writer of /dev/kmsg would: level
// 0 to 7, the message without its newline.
func (k *Kernel) Printk(level int, format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.printk(level, format, args...)
}

// Flood logs n records of filler text (level 6), as a noisy driver or a
// writer looping on /dev/kmsg would; beyond the log's capacity, the oldest
// records are overwritten.
func (k *Kernel) Flood(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range n {
		k.printk(6, "flood: record %d of %d", i+1, n)
	}
}

// HoldLog keeps the records logged from now on from the log's watchers,
// as if every reader were descheduled, until [Kernel.ReleaseLog]: with a
// [Kernel.Flood] meanwhile, a watcher then finds its records overwritten
// (EPIPE), deterministically.
func (k *Kernel) HoldLog() {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	k.log.held = true
}

// ReleaseLog shows the held records and wakes the watchers.
func (k *Kernel) ReleaseLog() {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	k.log.held = false
	k.log.show()
}

// InjectLogOpenFault makes watching the log fail with err, wrapped as
// /dev/kmsg's open would be (EPERM: kernel.dmesg_restrict without
// CAP_SYSLOG; ENOENT: no /dev/kmsg). nil removes the fault.
func (k *Kernel) InjectLogOpenFault(err error) {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	k.log.openErr = err
}

// InjectLogReadFault makes every read of an open watch fail with err (a
// log that can no longer be read), and wakes the watchers so that they see
// it. nil removes the fault.
func (k *Kernel) InjectLogReadFault(err error) {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	k.log.readErr = err
	close(k.log.wake)
	k.log.wake = make(chan struct{})
}

// LogWaiters returns how many watchers wait in Next for a record: a test
// that must act while a wait sleeps on the log waits for this to be 1.
func (k *Kernel) LogWaiters() int {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	return k.log.waiting
}

// LogSleeps returns how many times a watcher began to wait for a record:
// a test that made a sleeping wait read records waits for this to grow
// (and LogWaiters to be 1) to know that the wait has read them all.
func (k *Kernel) LogSleeps() int {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	return k.log.sleeps
}

// LogWatches returns how many watches of the log are open: 0 once every
// wait has closed its own.
func (k *Kernel) LogWatches() int {
	k.log.mu.Lock()
	defer k.log.mu.Unlock()
	return k.log.watches
}
