package snapshot

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klp-project/klp/kernel"
)

var _ kernel.Files = (*Archive)(nil)

// Roots are the roots of a snapshot's handle: where the captured tree's
// sys, proc, dev and boot directories appear, the running kernel's own
// paths, so that what klp prints about a snapshot names the files as they
// were on the machine.
func Roots() kernel.Roots { return kernel.DefaultRoots() }

// Handle returns a read-only handle on the captured kernel. It reads only
// the archive (never a file of this machine), and the task scanner takes
// its portable path.
func (a *Archive) Handle() (*kernel.Handle, error) {
	r := Roots()
	if fi, err := a.Lstat(r.Dev + "/kmsg"); err != nil || !fi.Mode().IsRegular() {
		// No log captured: the handle must not take this machine's
		// /dev/kmsg for the captured kernel's.
		r.Dev = ""
	}
	return kernel.NewHandle(r, a, false)
}

// lookup finds the node of an absolute path.
func (a *Archive) lookup(op, path string) (*node, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, &os.PathError{Op: op, Path: path, Err: syscall.ENOENT}
	}
	n := a.root
	rest := path[1:]
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, "/")
		if part == "" || part == "." {
			continue
		}
		if !n.dir {
			return nil, &os.PathError{Op: op, Path: path, Err: syscall.ENOTDIR}
		}
		if part == ".." {
			// Paths come cleaned; a ".." is refused rather than
			// resolved, like the names of the archive.
			return nil, &os.PathError{Op: op, Path: path, Err: syscall.ENOENT}
		}
		i := sort.Search(len(n.children), func(i int) bool { return n.children[i].name >= part })
		if i == len(n.children) || n.children[i].name != part {
			return nil, &os.PathError{Op: op, Path: path, Err: syscall.ENOENT}
		}
		n = n.children[i]
	}
	return n, nil
}

// Open implements [kernel.Files]: the captured content, or the error the
// capture met reading the file, at open or at the first read as it was.
func (a *Archive) Open(path string) (io.ReadCloser, error) {
	n, err := a.lookup("open", path)
	if err != nil {
		return nil, err
	}
	switch {
	case n.dir:
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: %w", kernel.ErrNotRegular, syscall.EISDIR)}
	case n.err != nil && n.op == "read":
		return &failingReader{err: &os.PathError{Op: "read", Path: path, Err: n.err}}, nil
	case n.err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: n.err}
	}
	return io.NopCloser(bytes.NewReader(n.data)), nil
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }
func (f *failingReader) Close() error             { return nil }

// ReadDir implements [kernel.Files].
func (a *Archive) ReadDir(path string) ([]fs.DirEntry, error) {
	n, err := a.lookup("open", path)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOTDIR}
	}
	if n.err != nil {
		return nil, &os.PathError{Op: n.op, Path: path, Err: n.err}
	}
	out := make([]fs.DirEntry, len(n.children))
	for i, c := range n.children {
		out[i] = fs.FileInfoToDirEntry(fileInfo{n: c, mtime: a.manifest.Time})
	}
	return out, nil
}

// Lstat implements [kernel.Files]; a snapshot holds no links.
func (a *Archive) Lstat(path string) (fs.FileInfo, error) {
	n, err := a.lookup("lstat", path)
	if err != nil {
		return nil, err
	}
	return fileInfo{n: n, mtime: a.manifest.Time}, nil
}

// Stat implements [kernel.Files].
func (a *Archive) Stat(path string) (fs.FileInfo, error) {
	n, err := a.lookup("stat", path)
	if err != nil {
		return nil, err
	}
	return fileInfo{n: n, mtime: a.manifest.Time}, nil
}

// fileInfo describes a node.
type fileInfo struct {
	n     *node
	mtime time.Time
}

func (fi fileInfo) Name() string { return fi.n.name }
func (fi fileInfo) Size() int64  { return int64(len(fi.n.data)) }
func (fi fileInfo) Mode() fs.FileMode {
	if fi.n.dir {
		return fs.ModeDir | fi.n.perm
	}
	return fi.n.perm
}
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.n.dir }
func (fi fileInfo) Sys() any           { return nil }
