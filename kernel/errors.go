package kernel

import (
	"errors"

	"github.com/klp-project/klp/internal/sysfile"
)

// Sentinel errors shared by every package that reads or changes the kernel.
// They are declared here once; livepatch and kmod re-export the ones their
// callers test for (var ErrNotSupported = kernel.ErrNotSupported), so that
// errors.Is agrees whichever package a caller names.
var (
	// ErrMountPoint reports a root that does not exist or is not a
	// directory: a typo in --sysfs must not read as "no patches loaded".
	ErrMountPoint = errors.New("bad mount point")

	// ErrNotSupported reports a kernel without live patching: neither
	// /sys/kernel/livepatch nor /sys/kernel/kgraft exists, or the module
	// syscalls answer ENOSYS (a kernel without CONFIG_MODULES).
	ErrNotSupported = errors.New("kernel live patching not supported")

	// ErrPermission reports an action or read refused for lack of
	// privilege (EPERM, EACCES): klp needs root (CAP_SYS_MODULE,
	// CAP_SYS_ADMIN for stacks).
	ErrPermission = errors.New("permission denied (root is required)")

	// ErrInvalidName reports a name that cannot be a kernel module name,
	// and so cannot be a patch name either (see [ValidateModuleName]).
	// Such names are refused before any path is built from them.
	ErrInvalidName = errors.New("invalid name")

	// ErrNotLive reports an action (an attribute write, a module syscall,
	// a signal) asked of a handle that does not stand for the running
	// kernel: a copied tree or a snapshot is for reading only.
	ErrNotLive = errors.New("not the running kernel")

	// ErrParse reports a kernel file whose content is not what the kernel
	// prints.
	ErrParse = sysfile.ErrParse

	// ErrNotRegular reports a FIFO, device, socket or symbolic link where
	// a regular file is expected.
	ErrNotRegular = sysfile.ErrNotRegular

	// ErrTooLarge reports a file larger than the read cap.
	ErrTooLarge = sysfile.ErrTooLarge
)
