// Package sysfile reads and writes the small attribute files of sysfs and
// procfs.
//
// Pseudo-files report sizes of 0 or 4096 whatever they hold, so nothing here
// calls Stat before reading; reads are capped so that a hostile or broken
// snapshot tree (a support engineer's copy of another machine) cannot make klp
// read gigabytes.
package sysfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MaxAttrSize caps the size of one attribute file. Kernel attributes print at
// most a page; /proc/<pid>/cmdline can be longer, so callers of ReadLimit may
// ask for more.
const MaxAttrSize = 64 << 10

// ErrParse reports an attribute whose content is not what the kernel prints.
var ErrParse = errors.New("unexpected content")

// ErrTooLarge reports a file larger than the cap the caller set.
var ErrTooLarge = errors.New("file too large")

// ReadBytes returns the content of path, read without Stat, up to limit bytes.
func ReadBytes(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
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
	f, err := os.Open(path)
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
	s, err := ReadString(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, &os.PathError{Op: "parse", Path: path, Err: fmt.Errorf("%w %q: want an integer", ErrParse, truncate(s))}
	}
	return n, nil
}

// ReadBool reads a 0/1 attribute. Any other integer is an error rather than
// "true": enabled, transition and patched print only 0 or 1, so anything else
// means the tree is not what we think it is.
func ReadBool(path string) (bool, error) {
	n, err := ReadInt(path)
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
// `echo -n data > path` does; the file is never created. The kernel refuses
// a bad value in write(2), not in open(2), with an errno (EINVAL, EBUSY),
// which the returned *os.PathError keeps reachable through errors.Is.
// O_TRUNC is harmless on sysfs and procfs.
func WriteString(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
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
