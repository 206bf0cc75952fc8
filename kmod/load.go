package kmod

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klp-project/klp/internal/sysfile"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/modcompress"
)

// maxModuleSize caps a module image read into memory for init_module. The
// largest in-tree modules are tens of MiB; modules with DWARF can be
// hundreds.
const maxModuleSize = 1 << 30

// Method says which syscall loaded (or tried to load) a module.
type Method string

// Load methods.
const (
	// MethodFinit: finit_module(2) on the open file, the normal path.
	MethodFinit Method = "finit_module"
	// MethodFinitCompressed: finit_module(2) with
	// MODULE_INIT_COMPRESSED_FILE; the kernel decompresses (5.17+ with
	// CONFIG_MODULE_DECOMPRESS).
	MethodFinitCompressed Method = "finit_module(MODULE_INIT_COMPRESSED_FILE)"
	// MethodInit: init_module(2) with the image read (and decompressed)
	// in user space; used when finit_module is missing (ENOSYS, e.g.
	// filtered by seccomp) or the kernel cannot decompress the module.
	MethodInit Method = "init_module"
)

// LoadResult describes a load attempt.
type LoadResult struct {
	Path        string // the module file
	Method      Method // the syscall that made the final attempt
	Compression string // "", "xz", "zstd" or "gzip", from the file's magic bytes
	// Log holds the kernel log records written during the load: taint
	// notices ("loading out-of-tree module taints kernel", "tainting kernel
	// with TAINT_LIVEPATCH", "module verification failed ..."), livepatch's
	// "enabling patch" and, on failure, the reason. The kernel log is
	// global, so unrelated records logged meanwhile appear too.
	Log []KmsgRecord
	// LogErr is non-nil when Log is missing or incomplete; it wraps
	// [ErrKmsgUnavailable] when the log could not be opened (not root,
	// dmesg_restrict, no /dev/kmsg). It never fails the load.
	LogErr error
}

// LoadError is the error [Loader.Load] returns when the kernel refused the
// module. It carries the kernel log so that callers can explain why;
// errors.Is sees through it to the sentinel and the errno.
type LoadError struct {
	LoadResult
	Err error // the translated error, e.g. wrapping ErrInvalid and unix.EINVAL
}

// Error returns the translated error, followed by the most relevant kernel
// messages (level warning or more severe), if any.
func (e *LoadError) Error() string {
	msgs := e.KernelMessages()
	if len(msgs) == 0 {
		return e.Err.Error()
	}
	const keep = 3
	if len(msgs) > keep {
		msgs = msgs[len(msgs)-keep:]
	}
	return e.Err.Error() + " (kernel: " + strings.Join(msgs, "; ") + ")"
}

// Unwrap returns the translated error.
func (e *LoadError) Unwrap() error { return e.Err }

// KernelMessages returns the messages of Log that can explain a failure:
// level warning (4) or more severe, minus the loader's taint notices
// ("loading out-of-tree module taints kernel.", "... - tainting kernel"),
// which accompany every load of an out-of-tree or unsigned module.
func (e *LoadError) KernelMessages() []string {
	var out []string
	for _, r := range e.Log {
		if r.Level > 4 || isTaintNotice(r.Message) {
			continue
		}
		out = append(out, r.Message)
	}
	return out
}

func isTaintNotice(msg string) bool {
	return strings.HasSuffix(msg, "taints kernel.") || strings.HasSuffix(msg, "tainting kernel") ||
		strings.Contains(msg, "tainting kernel with ")
}

// Load loads the module file at path with the given parameters
// ("name=value ..."). See [Loader.LoadFlags].
func (l *Loader) Load(path, params string) (*LoadResult, error) {
	return l.LoadFlags(path, params, 0)
}

// LoadFlags loads the module file at path, like insmod.
//
// The file is opened and passed to finit_module(2). A compressed file
// (xz, zstd, gzip, recognised by its magic bytes, as kmod does) is passed
// with MODULE_INIT_COMPRESSED_FILE when /sys/module/compression names its
// format or is absent; when the kernel refuses the flag (EINVAL from
// kernels before 5.17 that do not know it, EOPNOTSUPP without
// CONFIG_MODULE_DECOMPRESS, ENOSYS) or names another format, the module is
// decompressed in user space and loaded with init_module(2). When the
// kernel does advertise the file's format, an EINVAL is the module's own
// error (its init ran) and is not retried. finit_module returning ENOSYS
// also falls back to init_module.
//
// flags are MODULE_INIT_IGNORE_* bits (modprobe --force); init_module
// cannot carry them, so a fallback with such flags fails with
// [ErrInitFlags].
//
// Around the syscall the kernel log is captured (see [LoadResult.Log]).
// On failure the error is a [*LoadError] wrapping a sentinel ([ErrBusy],
// [ErrInvalid], ...) and the errno. The load of a livepatch module returns
// as soon as its init finished: the transition runs on asynchronously.
func (l *Loader) LoadFlags(path, params string, flags int) (*LoadResult, error) {
	f, err := sysfile.OpenFollow(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	var magic [6]byte
	n, err := f.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	res := &LoadResult{Path: path}
	if k := modcompress.Compressed(magic[:n]); k != modcompress.None {
		res.Compression = k.String()
	}

	var kmsg io.ReadCloser
	kmsg, res.LogErr = l.kmsg.OpenKmsg()

	err = l.load(f, params, flags, res)

	if kmsg != nil {
		res.Log, res.LogErr = readKmsg(kmsg)
	}
	if err != nil {
		return nil, &LoadError{LoadResult: *res, Err: err}
	}
	return res, nil
}

// load makes the syscalls; it returns translated errors.
func (l *Loader) load(f *os.File, params string, flags int, res *LoadResult) error {
	fd := int(f.Fd())
	path := res.Path
	if res.Compression == "" {
		res.Method = MethodFinit
		err := l.live.FinitModule(fd, params, flags)
		if !errors.Is(err, unix.ENOSYS) {
			return mapLoad(err, path)
		}
		// The image read is the file already open, not the path again.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("load %s: finit_module unavailable: %w", path, err)
		}
		image, err := modcompress.ReadAllLimit(f, maxModuleSize)
		if err != nil {
			return fmt.Errorf("load %s: finit_module unavailable: %w", path, err)
		}
		return l.initModule(image, params, flags, res)
	}

	kernelComp, err := l.Compression()
	if err != nil {
		kernelComp = "" // unreadable: behave as if unknown and let the kernel decide
	}
	if kernelComp == "" || kernelComp == res.Compression {
		res.Method = MethodFinitCompressed
		err := l.live.FinitModule(fd, params, flags|unix.MODULE_INIT_COMPRESSED_FILE)
		unsupported := errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) ||
			(kernelComp == "" && errors.Is(err, unix.EINVAL))
		if !unsupported {
			return mapLoad(err, path)
		}
	}
	image, err := l.decompress(path, modcompress.DefaultLimit)
	if err != nil {
		return fmt.Errorf("load %s: decompress %s: %w", path, res.Compression, err)
	}
	return l.initModule(image, params, flags, res)
}

func (l *Loader) initModule(image []byte, params string, flags int, res *LoadResult) error {
	res.Method = MethodInit
	if flags&(unix.MODULE_INIT_IGNORE_MODVERSIONS|unix.MODULE_INIT_IGNORE_VERMAGIC) != 0 {
		return fmt.Errorf("%w: load %s (flags %#x)", ErrInitFlags, res.Path, flags)
	}
	return mapLoad(l.live.InitModule(image, params), res.Path)
}

func mapLoad(err error, path string) error {
	if err == nil {
		return nil
	}
	return loadErrno(err, path)
}

// defaultDecompress decompresses with internal/modcompress.
func defaultDecompress(path string, limit int64) ([]byte, error) {
	return modcompress.ReadFile(path, limit)
}

// Unload removes the module name with delete_module(2), like rmmod.
//
// O_NONBLOCK is always added, as rmmod does: since Linux 3.13 the kernel
// no longer waits for the refcount to drop anyway. Pass unix.O_TRUNC in
// flags to force the removal (rmmod -f; only with
// CONFIG_MODULE_FORCE_UNLOAD, and dangerous).
//
// A livepatch module can be removed only after its patch is gone: disabled
// and freed, or replaced by an atomic-replace patch. Until then its self-
// reference makes delete_module fail with EAGAIN ([ErrInUse]); use
// [FS.WaitRefcnt] to wait for the reference to drop. Errors wrap
// [ErrNotLoaded] (ENOENT), [ErrInUse] (EAGAIN, EBUSY) or [ErrPermission]
// (EPERM), and the errno.
func (l *Loader) Unload(name string, flags int) error {
	name, err := cleanName(name)
	if err != nil {
		return fmt.Errorf("unload: %w", err)
	}
	if err := l.live.DeleteModule(name, flags|unix.O_NONBLOCK); err != nil {
		return deleteErrno(err, name)
	}
	return nil
}
