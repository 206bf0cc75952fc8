package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/sysfile"
)

// ReadFiles reads the files names of the directory dir, each up to limit
// bytes, and calls fn with each one's content or error, in order: the many
// small files of each task that klp snapshot captures. A longer file is cut
// at limit+1 bytes, so that fn can tell. As with [Handle.Open], anything but
// a regular file is refused, without blocking.
//
// On host directories (a handle from [Open]) one descriptor of dir serves
// every name (openat), which costs a third of the system calls of opening
// each path: on a host with 100,000 threads that is most of a snapshot's
// time. Elsewhere each file is read through the handle's Files. The error
// of a directory that cannot be opened is returned; fn's data is valid
// only during the call.
func (h *Handle) ReadFiles(dir string, names []string, limit int64, fn func(name string, data []byte, err error)) error {
	if !h.osDirs {
		if _, err := h.files.Stat(dir); err != nil {
			return err
		}
		for _, n := range names {
			data, err := h.readLimited(filepath.Join(dir, n), limit)
			fn(n, data, err)
		}
		return nil
	}
	var dfd int
	err := retryEINTR(func() (err error) {
		dfd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	buf := make([]byte, min(4096, limit+1))
	for _, n := range names {
		data, err := h.readAt(dfd, dir, n, limit, &buf)
		fn(n, data, err)
	}
	return nil
}

// readLimited reads up to limit+1 bytes of path through Files.
func (h *Handle) readLimited(path string, limit int64) ([]byte, error) {
	f, err := h.files.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: unwrapPath(err)}
	}
	return b, nil
}

// readAt reads name below the directory descriptor dfd into *buf.
func (h *Handle) readAt(dfd int, dir, name string, limit int64, buf *[]byte) ([]byte, error) {
	path := dir + "/" + name
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w (a symbolic link)", ErrNotRegular)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	// The running kernel's procfs and sysfs hold only what the kernel
	// made; a copied tree may hold a FIFO or a device anywhere.
	if !h.kernelFS {
		if err := sysfile.FstatRegular(fd); err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
	b := *buf
	n := 0
	for {
		if n == len(b) {
			if int64(n) > limit {
				break
			}
			b = append(b, make([]byte, min(int64(len(b)), limit+1-int64(n)))...)
			*buf = b
		}
		m, err := unix.Read(fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
		// A kernel attribute or procfs file of one record (a task's
		// stat, comm, stack, cmdline) hands out all it holds in one
		// read when the buffer is large enough: a short read is its
		// end, and a read for the end-of-file costs another system
		// call on each of a million files. A seq_file of many records
		// (maps, kallsyms) can read short before its end: it is not
		// for ReadFiles.
		if h.kernelFS && n < len(b) {
			break
		}
	}
	return b[:n], nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
