package livepatch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/klp-project/klp/internal/sysfile"
)

const (
	// DefaultSysMountPoint is where sysfs is normally mounted.
	DefaultSysMountPoint = "/sys"
	// DefaultProcMountPoint is where procfs is normally mounted.
	DefaultProcMountPoint = "/proc"

	livepatchDir = "kernel/livepatch"
	kgraftDir    = "kernel/kgraft"
)

// FS is a view of the kernel's live patching state under a sysfs root and a
// procfs root. The zero value is not usable; build one with [NewFS].
type FS struct {
	sys    string
	proc   string
	writer AttrWriter // nil: write the files
}

// NewFS returns an FS rooted at the given sysfs and procfs mount points. Both
// must be existing directories; a missing root is reported as
// [ErrMountPoint] naming the path, because a typo in --sysfs must not look
// like "no patches loaded".
func NewFS(sysRoot, procRoot string) (FS, error) {
	for _, root := range []string{sysRoot, procRoot} {
		fi, err := os.Stat(root)
		if err != nil {
			return FS{}, fmt.Errorf("%w: %w", ErrMountPoint, err)
		}
		if !fi.IsDir() {
			return FS{}, fmt.Errorf("%w: %s is not a directory", ErrMountPoint, root)
		}
	}
	return FS{sys: filepath.Clean(sysRoot), proc: filepath.Clean(procRoot)}, nil
}

// NewDefaultFS returns an FS for the running kernel (/sys and /proc).
func NewDefaultFS() (FS, error) {
	return NewFS(DefaultSysMountPoint, DefaultProcMountPoint)
}

// SysRoot returns the sysfs root this FS reads.
func (fs FS) SysRoot() string { return fs.sys }

// ProcRoot returns the procfs root this FS reads.
func (fs FS) ProcRoot() string { return fs.proc }

// SysPath joins path elements under the sysfs root.
func (fs FS) SysPath(elem ...string) string {
	return filepath.Join(append([]string{fs.sys}, elem...)...)
}

// ProcPath joins path elements under the procfs root.
func (fs FS) ProcPath(elem ...string) string {
	return filepath.Join(append([]string{fs.proc}, elem...)...)
}

// LivepatchPath returns the path of /sys/kernel/livepatch.
func (fs FS) LivepatchPath() string { return fs.SysPath(livepatchDir) }

// PatchPath returns the sysfs directory of the named patch, after checking
// that the name cannot escape it.
func (fs FS) PatchPath(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return fs.SysPath(livepatchDir, name), nil
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
	case sysfile.Exists(fs.SysPath(livepatchDir)):
		return InterfaceLivepatch
	case sysfile.Exists(fs.SysPath(kgraftDir)):
		return InterfaceKGraft
	}
	return InterfaceNone
}

// ValidateName checks that name can be a kernel module or patch name, so
// that joining it to a sysfs path cannot leave the intended directory.
// Kernel module names are at most 55 bytes (MODULE_NAME_LEN - 1).
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	case name == "." || name == ".." || strings.Contains(name, ".."):
		return fmt.Errorf("%w %q: must not contain \"..\"", ErrInvalidName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w %q: must not contain \"/\"", ErrInvalidName, name)
	case len(name) > 55:
		return fmt.Errorf("%w %q: longer than 55 bytes", ErrInvalidName, name)
	}
	return nil
}
