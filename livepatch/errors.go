package livepatch

import (
	"errors"

	"github.com/klp-project/klp/kernel"
)

// Sentinels shared with the other packages that read the kernel (declared
// once, in package kernel).
var (
	// ErrMountPoint reports a sysfs or procfs root that does not exist or
	// is not a directory.
	ErrMountPoint = kernel.ErrMountPoint

	// ErrNotSupported reports a kernel without live patching:
	// /sys/kernel/livepatch (and /sys/kernel/kgraft) are missing.
	ErrNotSupported = kernel.ErrNotSupported

	// ErrInvalidName reports a patch, object or module name that cannot be
	// a kernel object name, such as one containing "/" or "..". Such names
	// are refused before any path is built from them.
	ErrInvalidName = kernel.ErrInvalidName

	// ErrParse reports an attribute file whose content is not what the
	// kernel prints.
	ErrParse = kernel.ErrParse

	// ErrPermission reports a write or read refused for lack of privilege.
	ErrPermission = kernel.ErrPermission

	// ErrNotRegular reports a FIFO, device, socket or link where a regular
	// file is expected (a copied tree's planted file).
	ErrNotRegular = kernel.ErrNotRegular
)

var (
	// ErrNotFound reports a patch that is not loaded (no directory under
	// /sys/kernel/livepatch).
	ErrNotFound = errors.New("no such patch")

	// ErrStackUnavailable reports a kernel without /proc/<pid>/stack
	// (CONFIG_STACKTRACE unset).
	ErrStackUnavailable = errors.New("stack traces not available on this kernel")
)
