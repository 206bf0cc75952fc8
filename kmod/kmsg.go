package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klp-project/klp/kernel"
	"golang.org/x/sys/unix"
)

// KmsgRecord is one record of the kernel log: [kernel.KmsgRecord].
type KmsgRecord = kernel.KmsgRecord

// Messages returns the message texts of recs.
func Messages(recs []KmsgRecord) []string { return kernel.Messages(recs) }

// ParseKmsg parses records in /dev/kmsg's text format: [kernel.ParseKmsg].
func ParseKmsg(r io.Reader) ([]KmsgRecord, error) { return kernel.ParseKmsg(r) }

// ParseKmsgRecord parses one record: [kernel.ParseKmsgRecord].
func ParseKmsgRecord(b []byte) (KmsgRecord, error) { return kernel.ParseKmsgRecord(b) }

// KmsgSource opens the kernel log positioned after its newest record, so
// that reading returns only what the kernel logs afterwards. [Loader.Load]
// opens it before the syscall and reads it after, to explain failures.
//
// Reads return records in /dev/kmsg's text format (see [ParseKmsg]) and
// io.EOF once no further record is available; they never block.
type KmsgSource interface {
	OpenKmsg() (io.ReadCloser, error)
}

// DevKmsg is the real [KmsgSource]: the character device /dev/kmsg, or
// anything with the same layout at Path. Reading /dev/kmsg usually needs
// CAP_SYSLOG (kernel.dmesg_restrict=1) or root.
//
// A record becomes readable once the ring buffer finalises it: a line
// that ends in a newline (every pr_err/pr_notice the module loader and
// livepatch print) at once, a partial pr_cont line only when the next
// record arrives. SEEK_END likewise points at the oldest unfinalised record.
//
// It also works on a regular file of records (what internal/fakekernel
// writes): SEEK_END then sequential reads to EOF give the same result.
type DevKmsg struct {
	Path string
}

var _ KmsgSource = DevKmsg{}

// OpenKmsg opens Path non-blocking and seeks to its end.
//
// The descriptor is used with raw read(2)s rather than an *os.File: Go
// registers a pollable character device with its netpoller, and a read
// that returns EAGAIN would then park the goroutine until the next record
// arrives, i.e. block, which is exactly what must not happen here.
func (d DevKmsg) OpenKmsg() (io.ReadCloser, error) {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKmsgUnavailable, &os.PathError{Op: "open", Path: d.Path, Err: err})
	}
	// On /dev/kmsg, SEEK_END moves to the position after the last record
	// (devkmsg_llseek); on a regular file, to its size.
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %w", ErrKmsgUnavailable, &os.PathError{Op: "seek", Path: d.Path, Err: err})
	}
	return &kmsgReader{fd: fd, path: d.Path, buf: make([]byte, 16<<10)}, nil
}

// OpenLog opens Path non-blocking at its oldest record, to read the whole
// log the kernel still holds (klp snapshot). Reads never block: they return
// io.EOF once the newest record was read.
func (d DevKmsg) OpenLog() (io.ReadCloser, error) {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKmsgUnavailable, &os.PathError{Op: "open", Path: d.Path, Err: err})
	}
	return &kmsgReader{fd: fd, path: d.Path, buf: make([]byte, 16<<10)}, nil
}

// kmsgReader adapts /dev/kmsg's one-record-per-read(2) semantics to an
// io.Reader: each read(2) needs a buffer large enough for a whole record
// (else EINVAL), so it reads into its own buffer and hands out the bytes.
type kmsgReader struct {
	fd      int
	path    string
	buf     []byte
	pending []byte
}

func (r *kmsgReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	if r.fd < 0 {
		return 0, os.ErrClosed
	}
	for tries := 0; ; tries++ {
		n, err := unix.Read(r.fd, r.buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EPIPE) && tries < 16:
			// Records were overwritten since the last read (the ring
			// buffer wrapped); the kernel moved us to the oldest
			// record still available. Just read on.
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, io.EOF
		case err != nil:
			return 0, &os.PathError{Op: "read", Path: r.path, Err: err}
		case n == 0:
			return 0, io.EOF
		}
		c := copy(p, r.buf[:n])
		r.pending = r.buf[c:n]
		return c, nil
	}
}

func (r *kmsgReader) Close() error {
	if r.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: r.path, Err: err}
	}
	return nil
}

// maxKmsgRead caps how much of the log one load may collect.
const maxKmsgRead = 1 << 20

// readKmsg reads everything rc offers, parses it and closes rc.
func readKmsg(rc io.ReadCloser) ([]KmsgRecord, error) {
	data, rerr := io.ReadAll(io.LimitReader(rc, maxKmsgRead))
	cerr := rc.Close()
	recs, perr := ParseKmsg(bytes.NewReader(data))
	if rerr != nil {
		return recs, fmt.Errorf("%w: %w", ErrKmsgUnavailable, rerr)
	}
	if perr != nil {
		return recs, perr
	}
	if cerr != nil {
		return recs, fmt.Errorf("%w: %w", ErrKmsgUnavailable, cerr)
	}
	return recs, nil
}

// KmsgHistory opens the whole kernel log, from its oldest record still in
// the ring buffer. [DevKmsg] is one.
type KmsgHistory interface {
	OpenKmsgHistory() (io.ReadCloser, error)
}

var _ KmsgHistory = DevKmsg{}

// OpenKmsgHistory opens Path non-blocking at its oldest record (where
// /dev/kmsg starts a new reader).
func (d DevKmsg) OpenKmsgHistory() (io.ReadCloser, error) {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKmsgUnavailable, &os.PathError{Op: "open", Path: d.Path, Err: err})
	}
	return &kmsgReader{fd: fd, path: d.Path, buf: make([]byte, 16<<10)}, nil
}

// handleKmsg is a kernel log captured as a regular file, read through the
// handle that holds it.
type handleKmsg struct {
	k    *kernel.Handle
	path string
}

func (l handleKmsg) OpenKmsgHistory() (io.ReadCloser, error) {
	rc, err := l.k.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKmsgUnavailable, err)
	}
	return rc, nil
}

// maxKmsgHistory caps how much of the log [FS.KernelLog] reads: far more
// than a distribution's ring buffer holds (128 KiB to a few MiB).
const maxKmsgHistory = 16 << 20

// KernelLog reads the kernel log from its oldest record and returns the
// messages that keep accepts (nil: all), in order. Reading /dev/kmsg
// usually needs root (kernel.dmesg_restrict); the error then wraps
// [ErrKmsgUnavailable].
func (fs *FS) KernelLog(keep func(KmsgRecord) bool) ([]KmsgRecord, error) {
	h, ok := fs.kmsg.(KmsgHistory)
	if d, dev := fs.kmsg.(DevKmsg); dev && d.Path == fs.k.DevPath("kmsg") && !fs.k.KernelFS() {
		// Not the running kernel: /dev/kmsg is this machine's log. Only a
		// regular file given with the roots (a snapshot's, a test
		// double's) is the log of the kernel the files describe, and it
		// is read through the handle, never from this machine.
		if !fs.k.HasKernelLog() {
			return nil, fmt.Errorf("%w: %s is this machine's log, not that of the kernel these files describe (a copied tree, or a snapshot without a log)", ErrKmsgUnavailable, d.Path)
		}
		h, ok = handleKmsg{fs.k, d.Path}, true
	}
	if !ok {
		return nil, fmt.Errorf("%w: this kernel log cannot be read from its start", ErrKmsgUnavailable)
	}
	rc, err := h.OpenKmsgHistory()
	if err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(io.LimitReader(rc, maxKmsgHistory))
	rc.Close()
	recs, perr := ParseKmsg(bytes.NewReader(data))
	if keep != nil {
		kept := recs[:0]
		for _, r := range recs {
			if keep(r) {
				kept = append(kept, r)
			}
		}
		recs = kept
	}
	if rerr != nil {
		return recs, fmt.Errorf("%w: %w", ErrKmsgUnavailable, rerr)
	}
	return recs, perr
}
