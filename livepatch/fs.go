package livepatch

import (
	"errors"
	"fmt"
	"os"

	"github.com/klp-project/klp/kernel"
)

const (
	// DefaultSysMountPoint is where sysfs is normally mounted.
	DefaultSysMountPoint = "/sys"
	// DefaultProcMountPoint is where procfs is normally mounted.
	DefaultProcMountPoint = "/proc"

	livepatchDir = "kernel/livepatch"
	kgraftDir    = "kernel/kgraft"
)

// FS is a read-only view of the kernel's live patching state through a
// [kernel.Handle]: the running kernel, a copied tree, a snapshot or a test
// double. What changes the state is on [Control], which only the running
// kernel's handle gives. The zero value is not usable; build one with [New].
type FS struct {
	k *kernel.Handle
}

// New returns the live patching view of the kernel h stands for.
func New(h *kernel.Handle) FS { return FS{k: h} }

// NewFS returns an FS reading the given sysfs and procfs roots (a
// convenience for [kernel.Open] and [New]). Both must be existing
// directories; a missing root is reported as [ErrMountPoint] naming the
// path, because a typo in --sysfs must not look like "no patches loaded".
func NewFS(sysRoot, procRoot string) (FS, error) {
	h, err := kernel.Open(kernel.Roots{Sys: sysRoot, Proc: procRoot})
	if err != nil {
		return FS{}, err
	}
	return New(h), nil
}

// NewDefaultFS returns an FS for the running kernel (/sys and /proc).
func NewDefaultFS() (FS, error) {
	return NewFS(DefaultSysMountPoint, DefaultProcMountPoint)
}

// Kernel returns the handle the FS reads through.
func (fs FS) Kernel() *kernel.Handle { return fs.k }

// SysPath joins path elements under the sysfs root.
func (fs FS) SysPath(elem ...string) string { return fs.k.SysPath(elem...) }

// ProcPath joins path elements under the procfs root.
func (fs FS) ProcPath(elem ...string) string { return fs.k.ProcPath(elem...) }

// LivepatchPath returns the path of /sys/kernel/livepatch.
func (fs FS) LivepatchPath() string { return fs.SysPath(livepatchDir) }

// PatchPath returns the sysfs directory of the named patch, after checking
// that the name can be a module name (so it cannot escape the directory).
// The name may be spelt with '-' or '_' (see [kernel.ModuleName]).
func (fs FS) PatchPath(name string) (string, error) {
	clean, err := kernel.CleanModuleName(name)
	if err != nil {
		return "", err
	}
	return fs.SysPath(livepatchDir, clean), nil
}

// Interface names the kernel interface for live patching.
type Interface string

const (
	// InterfaceLivepatch is the upstream interface, /sys/kernel/livepatch.
	InterfaceLivepatch Interface = "livepatch"
	// InterfaceKGraft is the SLE 12 kGraft interface, /sys/kernel/kgraft.
	InterfaceKGraft Interface = "kgraft"
	// InterfaceNone means the kernel has no live patching support.
	InterfaceNone Interface = "none"
)

// Interface reports which live patching interface the kernel offers. The
// directory is created at boot by the subsystem itself, so its presence is
// the test of support.
func (fs FS) Interface() Interface {
	switch {
	case fs.k.Exists(fs.SysPath(livepatchDir)):
		return InterfaceLivepatch
	case fs.k.Exists(fs.SysPath(kgraftDir)):
		return InterfaceKGraft
	}
	return InterfaceNone
}

// ValidateName checks that name can be a live patch name: a patch is named
// after its module, so this is [kernel.ValidateModuleName].
func ValidateName(name string) error { return kernel.ValidateModuleName(name) }

// patchDirs returns the live patching directory and the names in it that
// can be patches: directories named as the kernel names modules, so that a
// stray file or a forged name in a copied tree is not taken for one.
func (fs FS) patchDirs() (string, []string, error) {
	dir := fs.LivepatchPath()
	entries, err := fs.k.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return dir, nil, fs.errNotSupported()
		}
		return dir, nil, fmt.Errorf("list patches: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if fs.k.IsDirEntry(dir, e) && kernel.ValidateModuleName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return dir, names, nil
}

// errNotSupported is the error of a read on a kernel without the interface.
func (fs FS) errNotSupported() error {
	return fmt.Errorf("%w: %s does not exist", ErrNotSupported, fs.LivepatchPath())
}
