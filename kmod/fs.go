package kmod

import (
	"github.com/klp-project/klp/kernel"
)

// Options configure an [FS]. The zero value reads the kernel log from the
// handle's /dev/kmsg and decompresses modules with internal/modcompress.
type Options struct {
	// Kmsg opens the kernel log around a load (nil = [DevKmsg] at the
	// handle's <dev>/kmsg).
	Kmsg KmsgSource
	// Decompress returns the decompressed image of a compressed module
	// file, at most limit bytes. It is used when the kernel cannot
	// decompress the module itself (nil = internal/modcompress.ReadFile).
	Decompress func(path string, limit int64) ([]byte, error)
}

// FS reads the kernel's module state through a [kernel.Handle]:
// /proc/modules and /sys/module/<m>/... of the running kernel, a copied
// tree, a snapshot or a test double. Loading and unloading are on
// [Loader], which only the running kernel's handle gives. It is safe for
// concurrent use; it holds no state besides its configuration.
type FS struct {
	k          *kernel.Handle
	kmsg       KmsgSource
	decompress func(path string, limit int64) ([]byte, error)
}

// New returns the module view of the kernel h stands for.
func New(h *kernel.Handle, opts Options) *FS {
	fs := &FS{k: h, kmsg: opts.Kmsg, decompress: opts.Decompress}
	if fs.kmsg == nil {
		fs.kmsg = DevKmsg{Path: h.DevPath("kmsg")}
	}
	if fs.decompress == nil {
		fs.decompress = defaultDecompress
	}
	return fs
}

// NewDefaultFS returns an FS for the running system, read only.
func NewDefaultFS() (*FS, error) {
	h, err := kernel.Open(kernel.Roots{})
	if err != nil {
		return nil, err
	}
	return New(h, Options{}), nil
}

// Kernel returns the handle the FS reads through.
func (fs *FS) Kernel() *kernel.Handle { return fs.k }

// Loader loads and unloads modules in the running kernel: an [FS] on a
// [kernel.Live] handle, whose module syscalls it makes.
type Loader struct {
	*FS
	live *kernel.Live
}

// NewLoader returns the loader of the kernel l stands for.
func NewLoader(l *kernel.Live, opts Options) *Loader {
	return &Loader{FS: New(l.Handle, opts), live: l}
}

// procPath joins elements below the procfs root.
func (fs *FS) procPath(elem ...string) string { return fs.k.ProcPath(elem...) }

// sysPath joins elements below the sysfs root.
func (fs *FS) sysPath(elem ...string) string { return fs.k.SysPath(elem...) }

// modulePath returns /sys/module/<name>/<elem...> for a validated name.
func (fs *FS) modulePath(name string, elem ...string) string {
	return fs.sysPath(append([]string{"module", name}, elem...)...)
}

// NormalizeName turns a module file name or a user-typed module name into
// the kernel's name for it (see [kernel.FileModuleName]).
func NormalizeName(s string) string { return kernel.FileModuleName(s) }

// ValidateName reports whether name can be a kernel module name (see
// [kernel.ValidateModuleName]). The error wraps [ErrInvalidName].
func ValidateName(name string) error { return kernel.ValidateModuleName(name) }

// cleanName normalises and validates a module name given by a caller.
func cleanName(name string) (string, error) { return kernel.CleanModuleName(name) }
