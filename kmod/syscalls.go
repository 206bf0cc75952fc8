package kmod

import "golang.org/x/sys/unix"

// Syscalls is the seam between this package and the kernel's module
// syscalls. [UnixSyscalls] makes the real calls; tests substitute a fake
// (internal/fakekernel implements it and reacts like the kernel does).
//
// Implementations return the raw errno (a [unix.Errno], possibly wrapped)
// so that [FS.Load] and [FS.Unload] can translate it into a sentinel.
type Syscalls interface {
	// FinitModule is finit_module(2): load the module in the open file fd.
	// flags are MODULE_INIT_* bits ([unix.MODULE_INIT_IGNORE_MODVERSIONS],
	// [unix.MODULE_INIT_IGNORE_VERMAGIC], [unix.MODULE_INIT_COMPRESSED_FILE]).
	FinitModule(fd int, params string, flags int) error
	// InitModule is init_module(2): load the (uncompressed) module image.
	InitModule(image []byte, params string) error
	// DeleteModule is delete_module(2). flags are O_NONBLOCK and
	// optionally O_TRUNC (forced unload, CONFIG_MODULE_FORCE_UNLOAD only).
	DeleteModule(name string, flags int) error
}

// UnixSyscalls makes the real syscalls through golang.org/x/sys/unix.
// They need CAP_SYS_MODULE.
type UnixSyscalls struct{}

var _ Syscalls = UnixSyscalls{}

// FinitModule calls [unix.FinitModule].
func (UnixSyscalls) FinitModule(fd int, params string, flags int) error {
	return unix.FinitModule(fd, params, flags)
}

// InitModule calls [unix.InitModule].
func (UnixSyscalls) InitModule(image []byte, params string) error {
	return unix.InitModule(image, params)
}

// DeleteModule calls [unix.DeleteModule].
func (UnixSyscalls) DeleteModule(name string, flags int) error {
	return unix.DeleteModule(name, flags)
}
