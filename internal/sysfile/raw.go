package sysfile

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw system calls for the pseudo-files of sysfs and procfs.
//
// syscall.Syscall tells Go's scheduler that the goroutine is in the kernel:
// that wakes the scheduler's monitor thread (sysmon) when it sleeps, and
// when the call has not returned after about 20 µs, the monitor hands the
// goroutine's processor to another thread (waking one, often only to find
// nothing to do), which gives it back afterwards. Opening, reading and closing a
// pseudo-file never waits for a disk or for another process, but on a slow
// or emulated CPU it takes longer than that, so that every attribute read
// costs several thread switches: measured in a task scan of 20,000 threads
// (one futex wake per task, 1.5 times slower than a C scanner) and at the
// end of a wait for a transition (a dozen switches between the kernel's
// completion record and the outcome, docs/performance.md). The calls below
// keep the processor instead; they are for pseudo-files only, never for a
// file on disk, whose read could hold every goroutine for as long as the
// disk takes. RawWrite is the exception: klp's own output when it is a
// regular file, whose write goes to the page cache and waits for no other
// process, or a terminal, which klp waits for either way (cli's rawOutput
// says why).
//
// Each function spells out its own syscall.RawSyscall and retry loop: a
// pointer converted to uintptr is kept alive and in place only in the
// argument list of that call itself, not through a helper of ours (whose
// stack growth could move a buffer on the goroutine's stack).

// RawOpenat opens path relative to the directory descriptor dirfd. path is
// a byte slice without a terminating NUL (RawOpenat appends one, in path's
// spare capacity when it has some), so that opening many files allocates
// nothing. A path holding a NUL is EINVAL, as in package syscall: the
// kernel would open what precedes it.
func RawOpenat(dirfd int, path []byte, flags int) (int, error) {
	if bytes.IndexByte(path, 0) >= 0 {
		return -1, unix.EINVAL
	}
	path = append(path, 0)
	for {
		fd, _, errno := syscall.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

// RawRead reads into b, which must not be empty.
func RawRead(fd int, b []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// RawWrite writes all of b to fd, again after a short write or EINTR. It
// returns how much was written.
func RawWrite(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, _, errno := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return n, errno
		}
		n += int(m)
	}
	return n, nil
}

// RawGetdents reads directory entries (getdents64) into buf, which must not
// be empty. It is for the running kernel's procfs, whose listings never
// wait for a disk: a paced task count lists a directory per process.
func RawGetdents(fd int, buf []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// RawClose closes fd. A close of a pseudo-file's descriptor cannot fail in
// a way that loses data, so its error is not reported.
func RawClose(fd int) {
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// rawStat describes path (relative to dirfd, flags as fstatat(2)'s),
// or the descriptor dirfd itself when path is empty and flags hold
// AT_EMPTY_PATH.
func rawStat(dirfd int, path []byte, st *unix.Stat_t, flags int) error {
	if bytes.IndexByte(path, 0) >= 0 {
		return unix.EINVAL
	}
	path = append(path, 0)
	for {
		_, _, errno := syscall.RawSyscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// RawFstatRegular is [FstatRegular] with a raw system call.
func RawFstatRegular(fd int) error {
	var st unix.Stat_t
	if err := rawStat(fd, nil, &st, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	return regular(st.Mode)
}

// ReadAttr is [ReadBytes] with raw system calls, for the pseudo-files of
// the running kernel's sysfs and procfs only (see above): the same checks
// (a regular file, no symbolic link, the type checked before and after the
// open) and the same errors. limit should be small (an attribute's page):
// the read holds the goroutine's processor until it returns.
func ReadAttr(path string, limit int64) ([]byte, error) {
	p := []byte(path)
	var st unix.Stat_t
	if err := rawStat(unix.AT_FDCWD, p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := regular(st.Mode); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	fd, err := RawOpenat(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NOFOLLOW)
	if err == unix.ELOOP {
		err = fmt.Errorf("%w (a symbolic link)", ErrNotRegular)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer RawClose(fd)
	if err := RawFstatRegular(fd); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// As io.ReadAll over limit+1 bytes: an attribute is read whole, up to
	// the end of the file, so that one longer than limit is told apart.
	b := make([]byte, 0, min(limit+1, 4096))
	for int64(len(b)) <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := RawRead(fd, b[len(b):min(int64(cap(b)), limit+1)])
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
	return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, limit)}
}
