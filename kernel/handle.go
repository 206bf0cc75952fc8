package kernel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klp-project/klp/internal/sysfile"
	"golang.org/x/sys/unix"
)

// Roots are the directories a [Handle] reads: where sysfs, procfs, /dev and
// /boot are for the kernel it stands for.
type Roots struct {
	Sys  string // sysfs mount point: /sys
	Proc string // procfs mount point: /proc
	Dev  string // device directory holding kmsg: /dev
	Boot string // kernel configs (config-<release>): /boot
}

// DefaultRoots are the running kernel's directories.
func DefaultRoots() Roots {
	return Roots{Sys: "/sys", Proc: "/proc", Dev: "/dev", Boot: "/boot"}
}

// withDefaults fills empty roots with the defaults and cleans the others.
func (r Roots) withDefaults() Roots {
	d := DefaultRoots()
	for _, p := range []struct{ v, def *string }{{&r.Sys, &d.Sys}, {&r.Proc, &d.Proc}, {&r.Dev, &d.Dev}, {&r.Boot, &d.Boot}} {
		if *p.v == "" {
			*p.v = *p.def
		}
		*p.v = filepath.Clean(*p.v)
	}
	return r
}

// MaxAttrSize caps one attribute read: kernel attributes print at most a
// page.
const MaxAttrSize = sysfile.MaxAttrSize

// Files is how a [Handle] reads. Paths are absolute and lie below one of the
// handle's roots. The files of a running kernel and of a copied tree are read
// with [OSFiles]; a snapshot archive or a test double with injected faults
// brings its own.
type Files interface {
	// Open opens a regular file for reading. Anything else (a FIFO, a
	// device, a socket, a directory, a symbolic link) is refused with an
	// error wrapping [ErrNotRegular], without blocking.
	Open(path string) (io.ReadCloser, error)
	// ReadDir lists a directory, sorted by name; a path that is not a
	// directory fails at once.
	ReadDir(path string) ([]fs.DirEntry, error)
	// Lstat describes path without following a final symbolic link.
	Lstat(path string) (fs.FileInfo, error)
	// Stat describes path, following symbolic links.
	Stat(path string) (fs.FileInfo, error)
}

// OSFiles reads the host's file system through package sysfile: regular
// files only, never through a final symbolic link, never blocking on open.
type OSFiles struct{}

var _ Files = OSFiles{}

// Open implements [Files].
func (OSFiles) Open(path string) (io.ReadCloser, error) { return sysfile.Open(path) }

// ReadDir implements [Files].
func (OSFiles) ReadDir(path string) ([]fs.DirEntry, error) { return sysfile.ReadDir(path) }

// Lstat implements [Files].
func (OSFiles) Lstat(path string) (fs.FileInfo, error) { return os.Lstat(path) }

// Stat implements [Files].
func (OSFiles) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

// Handle is one kernel's state, for reading: the running kernel, a tree
// copied from another machine, a snapshot archive or a test double. It says
// which kernel, and every package that reads the kernel reads through it. It
// has no way to change anything; [Live] adds the actions, for the running
// kernel only. A Handle is safe for concurrent use.
type Handle struct {
	roots    Roots
	files    Files
	osDirs   bool // the roots are host directories the task scanner may open itself
	kernelFS bool // Sys and Proc are the running kernel's sysfs and procfs
	release  func() (string, error)
	bpf      BPFReader // nil but for the running kernel and test doubles
	// kernelLog: <dev>/kmsg is this kernel's log (see HasKernelLog).
	kernelLog bool
}

// Open returns a read-only handle on the given roots, read from the host's
// file system. Empty roots are the defaults. Sys and Proc must be existing
// directories: a missing one is reported as [ErrMountPoint] naming the path.
// Whether they are the running kernel's own sysfs and procfs is recorded
// (see [Handle.KernelFS]), but a Handle never acts either way: use
// [OpenLive].
func Open(r Roots) (*Handle, error) {
	devGiven := r.Dev != ""
	r = r.withDefaults()
	h, err := NewHandle(r, OSFiles{}, true)
	if err != nil {
		return nil, err
	}
	h.kernelFS = isFS(r.Sys, unix.SYSFS_MAGIC) && isFS(r.Proc, unix.PROC_SUPER_MAGIC)
	h.kernelLog = h.kernelFS || devGiven
	if h.kernelFS {
		h.bpf = liveBPF{vmlinuxBTF: h.SysPath("kernel", "btf", "vmlinux")}
	}
	return h, nil
}

// NewHandle returns a read-only handle reading through files: a snapshot
// archive, or a test double that injects read faults. osDirs says that the
// roots are host directories holding what files reads (so the task scanner
// may open them itself, for speed). Sys and Proc must be directories as
// files sees them.
func NewHandle(r Roots, files Files, osDirs bool) (*Handle, error) {
	devGiven := r.Dev != ""
	r = r.withDefaults()
	for _, root := range []string{r.Sys, r.Proc} {
		fi, err := files.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMountPoint, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a directory", ErrMountPoint, root)
		}
	}
	h := &Handle{roots: r, files: files, osDirs: osDirs, kernelLog: devGiven}
	h.release = sync.OnceValues(h.readRelease)
	return h, nil
}

// isFS reports whether dir is the root of a file system of type magic.
func isFS(dir string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && int64(st.Type) == magic
}

// Roots returns the handle's roots.
func (h *Handle) Roots() Roots { return h.roots }

// Files returns what the handle reads through.
func (h *Handle) Files() Files { return h.files }

// KernelFS reports whether the handle reads the running kernel's own sysfs
// and procfs (their file system types say so), rather than a copy.
func (h *Handle) KernelFS() bool { return h.kernelFS }

// HasKernelLog reports whether <dev>/kmsg is the log of the kernel the
// handle stands for: the running kernel's, or a /dev root given with the
// roots (a test double, a snapshot that holds one). A copied tree opened
// with the default /dev would read the host's log instead.
func (h *Handle) HasKernelLog() bool { return h.kernelLog }

// ProcDir returns the procfs root as a host directory, and true, when the
// task scanner may open files below it itself; false for a snapshot archive.
func (h *Handle) ProcDir() (string, bool) { return h.roots.Proc, h.osDirs }

// SysPath joins path elements below the sysfs root.
func (h *Handle) SysPath(elem ...string) string { return join(h.roots.Sys, elem) }

// ProcPath joins path elements below the procfs root.
func (h *Handle) ProcPath(elem ...string) string { return join(h.roots.Proc, elem) }

// DevPath joins path elements below the /dev root.
func (h *Handle) DevPath(elem ...string) string { return join(h.roots.Dev, elem) }

// BootPath joins path elements below the /boot root.
func (h *Handle) BootPath(elem ...string) string { return join(h.roots.Boot, elem) }

func join(root string, elem []string) string {
	return filepath.Join(append([]string{root}, elem...)...)
}

// Release returns the kernel's release as uname -r prints it, from
// <procfs>/sys/kernel/osrelease, read once: a snapshot tree answers for the
// machine it was taken on.
func (h *Handle) Release() (string, error) { return h.release() }

func (h *Handle) readRelease() (string, error) {
	path := h.ProcPath("sys", "kernel", "osrelease")
	rel, err := h.ReadString(path)
	if err != nil {
		return "", fmt.Errorf("read kernel release: %w", err)
	}
	if rel == "" || strings.ContainsAny(rel, "/ \t\n") || rel == "." || rel == ".." {
		return "", fmt.Errorf("read kernel release: %w: %s holds %q", ErrParse, path, rel)
	}
	return rel, nil
}

// Version returns the numeric version of [Handle.Release].
func (h *Handle) Version() (Version, error) {
	rel, err := h.Release()
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(rel)
}

// Open opens a file below the roots for reading (a regular file only).
func (h *Handle) Open(path string) (io.ReadCloser, error) { return h.files.Open(path) }

// ReadDir lists a directory below the roots, sorted by name.
func (h *Handle) ReadDir(path string) ([]fs.DirEntry, error) { return h.files.ReadDir(path) }

// Lstat describes a path below the roots without following a final link.
func (h *Handle) Lstat(path string) (fs.FileInfo, error) { return h.files.Lstat(path) }

// Exists reports whether path exists. Errors other than "does not exist"
// count as existing, so that a caller goes on to read the file and reports
// the real error (EACCES, say) instead of silently skipping it.
func (h *Handle) Exists(path string) bool {
	_, err := h.files.Lstat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// IsDir reports whether path is a directory, or a symbolic link to one (a
// snapshot made with cp -rs holds links where sysfs has directories; reading
// through them is harmless, writing never happens on a copy).
func (h *Handle) IsDir(path string) bool {
	fi, err := h.files.Stat(path)
	return err == nil && fi.IsDir()
}

// IsDirEntry reports whether the entry e of directory dir is a directory, or
// a symbolic link to one.
func (h *Handle) IsDirEntry(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	return e.Type()&fs.ModeSymlink != 0 && h.IsDir(filepath.Join(dir, e.Name()))
}

// ReadBytes returns the content of path, read without Stat (pseudo-files
// report sizes of 0 or 4096), up to limit bytes; a longer file is an error
// wrapping [ErrTooLarge].
func (h *Handle) ReadBytes(path string, limit int64) ([]byte, error) {
	if limit <= MaxAttrSize && h.pseudoFile(path) {
		return sysfile.ReadAttr(path, limit)
	}
	f, err := h.files.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: unwrapPath(err)}
	}
	if int64(len(b)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, limit)}
	}
	return b, nil
}

// pseudoFile reports whether path lies below the running kernel's own
// sysfs, whose attributes are read with raw system calls
// ([sysfile.ReadAttr]): Go's scheduler otherwise hands the processor to
// another thread during each of the several calls of a read on a slow CPU (a
// dozen thread switches in the wait between the kernel's completion record
// and klp's outcome, docs/performance.md), and a sysfs attribute never waits
// for a disk or a process. procfs is read as any file: a task's cmdline
// waits for its memory map's lock, which a hung task can hold for ever, and
// a raw call would then stop every goroutine, the signal handler's
// included. A copied tree, /boot and /dev are files on disk.
func (h *Handle) pseudoFile(path string) bool {
	return h.kernelFS && below(path, h.roots.Sys)
}

// below reports whether path is clean and lies strictly below one of the
// roots.
func below(path string, roots ...string) bool {
	clean := filepath.Clean(path)
	if clean != path && clean+"/" != path {
		return false // ".." or doubled slashes: a path built from bad input
	}
	for _, root := range roots {
		if strings.HasPrefix(clean, root+"/") || root == "/" && clean != "/" {
			return true
		}
	}
	return false
}

// ReadPrefix returns at most limit bytes of path; a longer file is cut.
func (h *Handle) ReadPrefix(path string, limit int64) ([]byte, error) {
	f, err := h.files.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: unwrapPath(err)}
	}
	return b, nil
}

// unwrapPath drops an *os.PathError's own path, which callers replace.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ReadString returns the content of an attribute with surrounding white
// space removed.
func (h *Handle) ReadString(path string) (string, error) {
	b, err := h.ReadBytes(path, MaxAttrSize)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadInt reads an attribute that holds one decimal integer.
func (h *Handle) ReadInt(path string) (int, error) {
	b, err := h.ReadBytes(path, MaxAttrSize)
	if err != nil {
		return 0, err
	}
	return sysfile.ParseInt(path, b)
}

// ReadBool reads a 0/1 attribute; any other value is an error wrapping
// [ErrParse].
func (h *Handle) ReadBool(path string) (bool, error) {
	b, err := h.ReadBytes(path, MaxAttrSize)
	if err != nil {
		return false, err
	}
	return sysfile.ParseBool(path, b)
}
