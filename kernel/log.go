package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/sysfile"
)

// ErrLogLost reports kernel log records that were overwritten before they
// were read: the ring buffer wrapped (EPIPE from /dev/kmsg). The watch goes
// on with the oldest record the kernel still holds, so whatever the lost
// records announced must be read from the kernel's state instead.
var ErrLogLost = errors.New("kernel log records lost")

// ErrLogUnavailable reports a kernel log that cannot be watched: no
// /dev/kmsg, one that may not be read (EPERM when kernel.dmesg_restrict is
// 1 and the caller lacks CAP_SYSLOG), something else in its place, or a
// handle that is not the running kernel's.
var ErrLogUnavailable = errors.New("kernel log unavailable")

// LogWatcher opens the kernel log for watching: the seam behind
// [Live.WatchLog]. The real one is /dev/kmsg below the handle's /dev root;
// a test double logs its own records.
type LogWatcher interface {
	WatchLog() (LogWatch, error)
}

// LogWatch follows the kernel log from the moment it was opened. It is not
// safe for concurrent use.
type LogWatch interface {
	// Next waits for the next record and returns it in /dev/kmsg's format
	// (see [ParseKmsgRecord]); the bytes are valid until the next call.
	// It returns ctx's error once ctx is done (its deadline bounds the
	// wait), an error wrapping [ErrLogLost] when records were overwritten
	// before they were read (the next call goes on with the oldest record
	// still held), and any other error when the log can no longer be read.
	Next(ctx context.Context) ([]byte, error)
	Close() error
}

// WatchLog opens the kernel log positioned after its newest record, so that
// [LogWatch.Next] returns what the kernel logs from now on. A handle whose
// seams have no log, and a log that cannot be read, give an error wrapping
// [ErrLogUnavailable].
func (l *Live) WatchLog() (LogWatch, error) {
	if l.seams.Log == nil {
		return nil, fmt.Errorf("%w: %w", ErrLogUnavailable, ErrNotLive)
	}
	return l.seams.Log.WatchLog()
}

// DevKmsg watches the kernel log through the character device /dev/kmsg
// at Path.
//
// A read of /dev/kmsg returns one record, and blocks until there is one: the
// watch gives the descriptor to Go's poller, so that a goroutine waiting for
// a record costs nothing until the kernel logs one, and a deadline or a
// cancelled context ends the wait at once. Only the kernel's own device
// (character device 1:11) is watched: /dev/null bind-mounted over it, a FIFO
// or a regular file is [ErrLogUnavailable].
type DevKmsg struct {
	Path string
}

var _ LogWatcher = DevKmsg{}

// kmsgMajor and kmsgMinor are /dev/kmsg's device numbers (the mem driver's
// major, minor 11).
const (
	kmsgMajor = 1
	kmsgMinor = 11
)

// kmsgRecordMax bounds one record as read(2) returns it: the text (at most
// 1 KiB, escaped up to four times) with its prefix and dictionary. A read
// into a smaller buffer fails with EINVAL.
const kmsgRecordMax = 16 << 10

// WatchLog implements [LogWatcher].
func (d DevKmsg) WatchLog() (LogWatch, error) {
	w, err := d.watch()
	if err != nil {
		return nil, err // not a nil *kmsgWatch in the interface
	}
	return w, nil
}

// watch opens the watch of WatchLog, as the type keptKmsg keeps.
func (d DevKmsg) watch() (*kmsgWatch, error) {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogUnavailable, &os.PathError{Op: "open", Path: d.Path, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %w", ErrLogUnavailable, &os.PathError{Op: "stat", Path: d.Path, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != kmsgMajor || unix.Minor(st.Rdev) != kmsgMinor {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is not the kernel log device (1:%d)", ErrLogUnavailable, d.Path, kmsgMinor)
	}
	// SEEK_END moves past the newest record (devkmsg_llseek).
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %w", ErrLogUnavailable, &os.PathError{Op: "seek", Path: d.Path, Err: err})
	}
	// The descriptor is non-blocking, so os.NewFile hands it to the
	// poller (epoll): a read through its RawConn then parks the goroutine
	// until a record comes.
	f := os.NewFile(uintptr(fd), d.Path)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrLogUnavailable, err)
	}
	return &kmsgWatch{f: f, rc: rc, buf: make([]byte, kmsgRecordMax)}, nil
}

type kmsgWatch struct {
	f   *os.File
	rc  syscall.RawConn
	buf []byte
	// armed is the context the read deadline was last set for, and stop
	// cancels its wake-up: a flood of records then costs a read(2) each,
	// not a new deadline and wake-up per record.
	armed context.Context
	stop  func() bool
}

// past is a read deadline that has passed: it wakes a parked read.
var past = time.Unix(1, 0)

func (w *kmsgWatch) arm(ctx context.Context) error {
	w.disarm()
	dl, _ := ctx.Deadline() // zero: no deadline
	if err := w.f.SetReadDeadline(dl); err != nil {
		return fmt.Errorf("watch kernel log: %w", err)
	}
	w.stop = context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(past) })
	w.armed = ctx
	return nil
}

func (w *kmsgWatch) disarm() {
	if w.stop != nil {
		w.stop()
	}
	w.armed, w.stop = nil, nil
}

func (w *kmsgWatch) Next(ctx context.Context) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if w.armed != ctx {
			if err := w.arm(ctx); err != nil {
				return nil, err
			}
		}
		n, err := w.read()
		switch {
		case err == nil:
			return w.buf[:n], nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return nil, context.DeadlineExceeded // ctx's own timer is late
			}
			// Woken by the wake-up of an earlier context: set the
			// deadline again and read on.
			w.armed = nil
			continue
		case errors.Is(err, unix.EPIPE):
			return nil, fmt.Errorf("watch kernel log: %w", ErrLogLost)
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, io.EOF):
			// /dev/kmsg never ends; something else answers here.
			return nil, fmt.Errorf("watch kernel log: %w: %s ended", ErrLogUnavailable, w.f.Name())
		}
		return nil, fmt.Errorf("watch kernel log: %w", err)
	}
}

// read reads one record into w.buf: the poller waits until the descriptor
// is readable (or the read deadline passes), and the read itself is a raw
// read(2) (sysfile.RawRead), which on a non-blocking descriptor returns at
// once. A read through os.File tells Go's scheduler that the goroutine
// enters the kernel, which wakes the scheduler's monitor thread (sysmon)
// from its sleep; on one emulated CPU it then preempted the waiter at each
// of its next fifty 20 µs sleeps, about every 0.2 ms for 10 ms, just when
// the kernel had logged the end of the transition (docs/performance.md).
func (w *kmsgWatch) read() (int, error) {
	var n int
	var rerr error
	err := w.rc.Read(func(fd uintptr) bool {
		var err error
		n, err = sysfile.RawRead(int(fd), w.buf)
		if err == unix.EAGAIN {
			return false // nothing yet: wait for the poller
		}
		if err != nil {
			rerr = &os.PathError{Op: "read", Path: w.f.Name(), Err: err}
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err // the deadline, or a closed watch
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (w *kmsgWatch) Close() error {
	w.disarm()
	return w.f.Close()
}

// keptKmsg is the log of a handle from [OpenLive]: a [DevKmsg] whose watch,
// once the wait that opened it closes it, is kept open for the handle's
// next wait. Closing an os.File tells Go's scheduler that the goroutine
// enters the kernel, which wakes the scheduler's monitor thread (see
// kmsgWatch.read), and a wait closes its watch on its way from the kernel's
// completion record to its outcome: on one emulated CPU the monitor then
// preempted it every 0.2 ms until the outcome was written
// (docs/performance.md). One descriptor per handle stays open; once the
// handle is gone, the os.File's own cleanup closes it.
type keptKmsg struct {
	dev  DevKmsg
	mu   sync.Mutex
	idle *kmsgWatch // a closed watch, kept for the next
}

var _ LogWatcher = (*keptKmsg)(nil)

// WatchLog implements [LogWatcher]: the kept watch moved past the records
// logged since (as a new one opens after the newest), else a new one.
func (k *keptKmsg) WatchLog() (LogWatch, error) {
	k.mu.Lock()
	w := k.idle
	k.idle = nil
	k.mu.Unlock()
	if w != nil {
		if _, err := w.f.Seek(0, io.SeekEnd); err == nil {
			return &keptWatch{w: w, k: k}, nil
		}
		w.f.Close()
	}
	w, err := k.dev.watch()
	if err != nil {
		return nil, err
	}
	return &keptWatch{w: w, k: k}, nil
}

// keptWatch is a watch of a keptKmsg: its Close keeps the descriptor for
// the next watch (one at a time; another is closed).
type keptWatch struct {
	w *kmsgWatch // nil once closed
	k *keptKmsg
}

func (kw *keptWatch) Next(ctx context.Context) ([]byte, error) {
	if kw.w == nil {
		return nil, fmt.Errorf("watch kernel log: %w", os.ErrClosed)
	}
	return kw.w.Next(ctx)
}

func (kw *keptWatch) Close() error {
	w := kw.w
	if w == nil {
		return nil
	}
	kw.w = nil
	w.disarm()
	kw.k.mu.Lock()
	defer kw.k.mu.Unlock()
	if kw.k.idle == nil {
		kw.k.idle = w
		return nil
	}
	return w.f.Close()
}
