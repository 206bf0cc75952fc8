package livepatch

import (
	"errors"

	"github.com/klp-project/klp/internal/sysfile"
)

var (
	// ErrMountPoint reports a sysfs or procfs root that does not exist or is
	// not a directory.
	ErrMountPoint = errors.New("bad mount point")

	// ErrNotSupported reports a kernel without live patching:
	// /sys/kernel/livepatch (and /sys/kernel/kgraft) are missing.
	ErrNotSupported = errors.New("kernel live patching not supported")

	// ErrInvalidName reports a patch, object or module name that cannot be
	// a kernel object name, such as one containing "/" or "..". Such names
	// are refused before any path is built from them.
	ErrInvalidName = errors.New("invalid name")

	// ErrNotFound reports a patch that is not loaded (no directory under
	// /sys/kernel/livepatch).
	ErrNotFound = errors.New("no such patch")

	// ErrParse reports an attribute file whose content is not what the
	// kernel prints.
	ErrParse = sysfile.ErrParse

	// ErrStackUnavailable reports a kernel without /proc/<pid>/stack
	// (CONFIG_STACKTRACE unset).
	ErrStackUnavailable = errors.New("stack traces not available on this kernel")
)
