package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Default mount points, used by [NewDefaultFS] and for empty [Options] fields.
const (
	DefaultProcMountPoint = "/proc"
	DefaultSysMountPoint  = "/sys"
	DefaultDevRoot        = "/dev"
)

// maxModuleNameLen is MODULE_NAME_LEN-1 on 64-bit kernels
// (MODULE_NAME_LEN = 64 - sizeof(unsigned long)): the longest name
// delete_module and /sys/module can carry.
const maxModuleNameLen = 55

// Options configure an [FS]. The zero value means the real system: /proc,
// /sys, /dev, the real syscalls and /dev/kmsg.
type Options struct {
	// ProcRoot is the procfs mount point ("" = "/proc"). /proc/modules is
	// read below it.
	ProcRoot string
	// SysRoot is the sysfs mount point ("" = "/sys"). /sys/module/<m>/...
	// and /sys/module/compression are read below it.
	SysRoot string
	// DevRoot is the directory holding kmsg ("" = "/dev"). Only used when
	// Kmsg is nil.
	DevRoot string
	// Syscalls makes the module syscalls (nil = [UnixSyscalls]).
	Syscalls Syscalls
	// Kmsg opens the kernel log around a load (nil = [DevKmsg] at
	// DevRoot/kmsg).
	Kmsg KmsgSource
	// Attr writes attributes such as module parameters (nil =
	// [FileAttrWriter]).
	Attr AttrWriter
	// Decompress returns the decompressed image of a compressed module
	// file, at most limit bytes. It is used when the kernel cannot
	// decompress the module itself (nil = internal/modcompress.ReadFile).
	Decompress func(path string, limit int64) ([]byte, error)
}

// FS gives access to the kernel's module state and the module syscalls,
// with every kernel path taken below injected roots (so tests can point
// it at a fake tree, see internal/fakekernel). It is safe for concurrent
// use; it holds no state besides its configuration.
type FS struct {
	proc, sys, dev string
	sc             Syscalls
	kmsg           KmsgSource
	attr           AttrWriter
	decompress     func(path string, limit int64) ([]byte, error)
}

// NewFS returns an FS configured by opts. ProcRoot and SysRoot must be
// existing directories; DevRoot need not exist (the kernel log is optional).
func NewFS(opts Options) (*FS, error) {
	fs := &FS{
		proc:       orDefault(opts.ProcRoot, DefaultProcMountPoint),
		sys:        orDefault(opts.SysRoot, DefaultSysMountPoint),
		dev:        orDefault(opts.DevRoot, DefaultDevRoot),
		sc:         opts.Syscalls,
		kmsg:       opts.Kmsg,
		attr:       opts.Attr,
		decompress: opts.Decompress,
	}
	for _, root := range []string{fs.proc, fs.sys} {
		st, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("mount point %s: %w", root, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("mount point %s: not a directory", root)
		}
	}
	if fs.sc == nil {
		fs.sc = UnixSyscalls{}
	}
	if fs.kmsg == nil {
		fs.kmsg = DevKmsg{Path: filepath.Join(fs.dev, "kmsg")}
	}
	if fs.attr == nil {
		fs.attr = FileAttrWriter{}
	}
	if fs.decompress == nil {
		fs.decompress = defaultDecompress
	}
	return fs, nil
}

// NewDefaultFS returns an FS for the running system.
func NewDefaultFS() (*FS, error) {
	return NewFS(Options{})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// procPath joins elements below the procfs root.
func (fs *FS) procPath(elem ...string) string {
	return filepath.Join(append([]string{fs.proc}, elem...)...)
}

// sysPath joins elements below the sysfs root.
func (fs *FS) sysPath(elem ...string) string {
	return filepath.Join(append([]string{fs.sys}, elem...)...)
}

// modulePath returns /sys/module/<name>/<elem...> for a validated name.
func (fs *FS) modulePath(name string, elem ...string) string {
	return fs.sysPath(append([]string{"module", name}, elem...)...)
}

// NormalizeName turns a module file name or a user-typed module name into
// the kernel's name for it: the directory and a ".ko" suffix (with an
// optional compression suffix ".xz", ".zst", ".gz") are dropped and '-'
// becomes '_'. Kbuild derives KBUILD_MODNAME from the file name this way,
// so "test-klp.ko.xz" is loaded as "test_klp", and kmod's rmmod accepts
// either spelling. The result is not validated; see [ValidateName].
func NormalizeName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(s, ".ko"+ext) {
			s = strings.TrimSuffix(s, ext)
			break
		}
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ValidateName reports whether name can be a kernel module name, so that
// it is safe to join into /sys/module/<name>. It rejects the empty name,
// names longer than 55 bytes (MODULE_NAME_LEN-1), '/', '.', ',' (which
// would corrupt /proc/modules' holder list), whitespace and control
// characters. '-' is accepted because callers may pass file-style names;
// [NormalizeName] maps it to '_'. The error wraps [ErrInvalidName].
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > maxModuleNameLen {
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidName, name, maxModuleNameLen)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '.' || r == ',' || r == '\\':
			return fmt.Errorf("%w: %q contains %q", ErrInvalidName, name, r)
		case r <= ' ' || r == 0x7f:
			return fmt.Errorf("%w: %q contains whitespace or a control character", ErrInvalidName, name)
		}
	}
	return nil
}

// cleanName normalises and validates a module name given by a caller.
func cleanName(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return strings.ReplaceAll(name, "-", "_"), nil
}
