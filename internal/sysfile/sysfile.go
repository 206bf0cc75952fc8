// Package sysfile reads and writes the small attribute files of sysfs and
// procfs, and opens files klp did not create without being trapped by them.
//
// Pseudo-files report sizes of 0 or 4096 whatever they hold, so nothing here
// calls Stat before reading; reads are capped so that a hostile or broken
// snapshot tree (a support engineer's copy of another machine) cannot make klp
// read gigabytes.
//
// Every open refuses what is not a regular file: a FIFO would block the read
// for ever (and with it a command holding klp's lock), a device may act on
// open, a socket cannot be read. The type is checked before the open, so that
// a device is never opened, and again on the descriptor, so that a file
// swapped between the two is caught. sysfs and procfs attributes are regular
// files and never symbolic links, so a link where an attribute should be is a
// planted one: [Open] refuses it, [OpenFollow] (for files a user names, such
// as a module file) follows it to a regular file.
package sysfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxAttrSize caps the size of one attribute file. Kernel attributes print at
// most a page; /proc/<pid>/cmdline can be longer, so callers of ReadLimit may
// ask for more.
const MaxAttrSize = 64 << 10

// ErrParse reports an attribute whose content is not what the kernel prints.
var ErrParse = errors.New("unexpected content")

// ErrTooLarge reports a file larger than the cap the caller set.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular reports a FIFO, device, socket, directory or (for [Open]) a
// symbolic link where a regular file is expected.
var ErrNotRegular = errors.New("not a regular file")

// ErrNotKernelFile reports an attribute write refused because the file is not
// on one of the file systems the caller allowed (sysfs or procfs): a copy of a
// tree is never written.
var ErrNotKernelFile = errors.New("not a sysfs or procfs file")

// Open opens path for reading. It refuses with [ErrNotRegular] anything but a
// regular file, a symbolic link included, and never blocks on the open.
func Open(path string) (*os.File, error) { return open(path, false) }

// OpenFollow is [Open] for a path a user gave: a symbolic link is followed,
// and its target must be a regular file.
func OpenFollow(path string) (*os.File, error) { return open(path, true) }

func open(path string, follow bool) (*os.File, error) {
	var st unix.Stat_t
	var err error
	if follow {
		err = ignoringEINTR(func() error { return unix.Stat(path, &st) })
	} else {
		err = ignoringEINTR(func() error { return unix.Lstat(path, &st) })
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := regular(st.Mode); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// O_NONBLOCK: should a FIFO take the file's place after the check, the
	// open returns at once instead of waiting for a writer.
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	var fd int
	err = ignoringEINTR(func() (err error) { fd, err = unix.Open(path, flags, 0); return err })
	if errors.Is(err, unix.ELOOP) && !follow {
		err = fmt.Errorf("%w (a symbolic link)", ErrNotRegular)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := fstatRegular(fd); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// regular returns nil for a regular file's mode, else an error wrapping
// [ErrNotRegular] that names what it is (and, for a directory, EISDIR).
func regular(mode uint32) error {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFDIR:
		return fmt.Errorf("%w: %w", ErrNotRegular, unix.EISDIR)
	case unix.S_IFIFO:
		return fmt.Errorf("%w (a FIFO)", ErrNotRegular)
	case unix.S_IFCHR, unix.S_IFBLK:
		return fmt.Errorf("%w (a device)", ErrNotRegular)
	case unix.S_IFSOCK:
		return fmt.Errorf("%w (a socket)", ErrNotRegular)
	case unix.S_IFLNK:
		return fmt.Errorf("%w (a symbolic link)", ErrNotRegular)
	}
	return ErrNotRegular
}

// FstatRegular returns nil when the open descriptor fd is a regular file,
// else the error [Open] gives for such a file (wrapping [ErrNotRegular]).
func FstatRegular(fd int) error { return fstatRegular(fd) }

func fstatRegular(fd int) error {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	return regular(st.Mode)
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// ReadDir lists the directory path, sorted by name, like [os.ReadDir], but a
// path that is not a directory (a FIFO among them) fails at once with
// ENOTDIR instead of blocking.
func ReadDir(path string) ([]fs.DirEntry, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// ReadBytes returns the content of path, read without Stat, up to limit bytes.
func ReadBytes(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(b)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, limit)}
	}
	return b, nil
}

// ReadPrefix returns at most limit bytes of path, read without Stat; a
// longer file is cut, not an error.
func ReadPrefix(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return b, nil
}

// ReadString returns the content of the attribute file path with surrounding
// white space removed.
func ReadString(path string) (string, error) {
	b, err := ReadBytes(path, MaxAttrSize)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadInt reads an attribute that holds one decimal integer, as every
// livepatch attribute does ("%d\n").
func ReadInt(path string) (int, error) {
	b, err := ReadBytes(path, MaxAttrSize)
	if err != nil {
		return 0, err
	}
	return ParseInt(path, b)
}

// ReadBool reads a 0/1 attribute. Any other integer is an error rather than
// "true": enabled, transition and patched print only 0 or 1, so anything else
// means the tree is not what we think it is.
func ReadBool(path string) (bool, error) {
	b, err := ReadBytes(path, MaxAttrSize)
	if err != nil {
		return false, err
	}
	return ParseBool(path, b)
}

// ParseInt parses the content b of the attribute file path as one decimal
// integer, surrounding white space ignored. The error names path.
func ParseInt(path string, b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, &os.PathError{Op: "parse", Path: path, Err: fmt.Errorf("%w %q: want an integer", ErrParse, truncate(s))}
	}
	return n, nil
}

// ParseBool parses the content b of a 0/1 attribute file path.
func ParseBool(path string, b []byte) (bool, error) {
	n, err := ParseInt(path, b)
	if err != nil {
		return false, err
	}
	switch n {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, &os.PathError{Op: "parse", Path: path, Err: fmt.Errorf("%w %d: want 0 or 1", ErrParse, n)}
}

// WriteString writes data to an attribute in one write(2), the way
// `echo -n data > path` does. The file is never created, never truncated (a
// sysfs attribute ignores O_TRUNC anyway) and never reached through a
// symbolic link, and it must be a regular file. When allowFS names file
// system types (unix.SYSFS_MAGIC, unix.PROC_SUPER_MAGIC), the open file must
// be on one of them, else the write is refused with [ErrNotKernelFile]: the
// check is made on the descriptor, so it holds for the file actually
// written. The kernel refuses a bad value in write(2), not in open(2), with an
// errno (EINVAL, EBUSY), which the returned *os.PathError keeps reachable
// through errors.Is.
func WriteString(path, data string, allowFS ...int64) error {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w (a symbolic link)", ErrNotRegular)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if err := fstatRegular(fd); err != nil {
		f.Close()
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	if len(allowFS) > 0 {
		var st unix.Statfs_t
		if err := ignoringEINTR(func() error { return unix.Fstatfs(fd, &st) }); err != nil {
			f.Close()
			return &os.PathError{Op: "statfs", Path: path, Err: err}
		}
		if !slices.Contains(allowFS, int64(st.Type)) {
			f.Close()
			return &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (file system type %#x)", ErrNotKernelFile, st.Type)}
		}
	}
	return writeOpened(f, path, data)
}

// writeOpened writes data to f in one write and closes it.
func writeOpened(f *os.File, path, data string) error {
	_, werr := f.WriteString(data)
	cerr := f.Close()
	var pe *os.PathError
	if errors.As(werr, &pe) {
		// The data in the message helps debugging; the errno stays
		// reachable with errors.Is.
		return &os.PathError{Op: fmt.Sprintf("write %q to", data), Path: path, Err: pe.Err}
	}
	if werr != nil {
		return werr
	}
	return cerr
}

// Exists reports whether path exists. Errors other than "does not exist"
// count as existing so that a caller goes on to read the file and reports the
// real error (for example EACCES) instead of silently skipping it.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
