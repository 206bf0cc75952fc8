package kmod

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/kernel"
)

// Sentinel errors. Errors returned by this package wrap one of these (the
// category) and, where a syscall failed, the [unix.Errno] as well (the
// cause), so both errors.Is(err, ErrBusy) and errors.Is(err, unix.EBUSY)
// hold. The doc comments record what the kernel means by each errno, which
// differs between finit_module/init_module and delete_module.
var (
	// ErrAlreadyLoaded: finit_module/init_module returned EEXIST. A module
	// with the same name is loaded and live. (If the other copy is still
	// loading or unloading the kernel answers EBUSY instead, see [ErrBusy].)
	ErrAlreadyLoaded = errors.New("module already loaded")

	// ErrBusy: finit_module/init_module returned EBUSY. For a livepatch
	// module this is what klp_enable_patch returns when another patch is
	// in transition (at most one transition runs system-wide), or when the
	// ftrace handler could not be registered for a patched function:
	// kernel.ftrace_enabled=0, or another IPMODIFY ftrace user on the same
	// function (a kprobe with a post_handler, a kretprobe). The kernel log
	// says which ("failed to register ftrace handler for function ..."). A
	// module of the same name that is still loading or unloading also
	// gives EBUSY.
	ErrBusy = errors.New("busy")

	// ErrBadModule: ENOEXEC. The file is not a module the kernel can parse
	// (bad ELF, truncated, or compressed without MODULE_INIT_COMPRESSED_FILE),
	// its vermagic does not match the kernel ("version magic '...' should
	// be '...'"; the real kernel answers ENOEXEC here, not EINVAL), the
	// module_layout CRC disagrees, or the module is marked livepatch=Y and
	// the kernel lacks CONFIG_LIVEPATCH ("module is marked as livepatch
	// module, but livepatch support is disabled").
	ErrBadModule = errors.New("invalid module format")

	// ErrInvalid: EINVAL. The module is not valid for this kernel or these
	// arguments: a symbol's modversions CRC disagrees ("disagrees about
	// version of symbol"), a parameter is malformed, or, for a livepatch,
	// klp_enable_patch refused it: a patched symbol is not found or is
	// ambiguous ("symbol 'x' not found in symbol table"), the module is not
	// marked livepatch, or its klp_state versions are incompatible with the
	// installed patches ("not compatible with the already installed
	// livepatches").
	ErrInvalid = errors.New("invalid module or parameters")

	// ErrSignature: EKEYREJECTED, ENOKEY, EBADMSG or ENOPKG. Signature
	// verification failed, or the module is unsigned and signatures are
	// enforced (sig_enforce / CONFIG_MODULE_SIG_FORCE, "Loading of unsigned
	// module is rejected").
	ErrSignature = errors.New("module signature rejected")

	// ErrPermission: EPERM. The caller lacks CAP_SYS_MODULE, module loading
	// is disabled (/proc/sys/kernel/modules_disabled=1), or the kernel is
	// locked down and the module is unsigned ("Lockdown: ... unsigned
	// module loading is restricted"). It is [kernel.ErrPermission].
	ErrPermission = kernel.ErrPermission

	// ErrUnknownSymbol: ENOENT from a load. The module needs a symbol that
	// no loaded code exports ("Unknown symbol x (err -2)"), usually a
	// missing dependency, or, for a livepatch, the kallsyms size lookup of
	// a patched function failed.
	ErrUnknownSymbol = errors.New("unknown symbol")

	// ErrNotLoaded: ENOENT from delete_module, or a module that is absent
	// from /proc/modules or /sys/module.
	ErrNotLoaded = errors.New("module not loaded")

	// ErrInUse: delete_module returned EAGAIN (EWOULDBLOCK) or EBUSY. EAGAIN
	// means the refcount is not zero or other modules depend on this one;
	// an enabled livepatch holds a reference on itself, so rmmod of an
	// enabled patch fails with EAGAIN ("Resource temporarily unavailable").
	// EBUSY means the module is still initialising or already going, or has
	// an init but no exit function and cannot be removed at all.
	ErrInUse = errors.New("module in use")

	// ErrNoDevice: ENODEV. For a livepatch: a pre-patch callback refused
	// the patch (the selftests use -ENODEV), livepatch is not initialised,
	// or the module reference could not be taken.
	ErrNoDevice = errors.New("no such device")

	// ErrInvalidName: a module name given to this package cannot be a
	// kernel module name (empty, too long, or contains '/', '.', ',',
	// whitespace or control characters). It is [kernel.ErrInvalidName].
	ErrInvalidName = kernel.ErrInvalidName

	// ErrParse: a kernel file (/proc/modules, /sys/module/<m>/refcnt,
	// a /dev/kmsg record) did not have the expected format. It is
	// [kernel.ErrParse].
	ErrParse = kernel.ErrParse

	// ErrKmsgUnavailable: the kernel log could not be opened or read
	// (/dev/kmsg missing, or not readable: non-root, dmesg_restrict). The
	// load itself is not affected; only the explanation is missing.
	ErrKmsgUnavailable = errors.New("kernel log unavailable")

	// ErrNotSupported: the module syscalls answer ENOSYS (a kernel
	// without CONFIG_MODULES, or a seccomp filter; for a load, after the
	// init_module fallback also failed): no live patching is possible. It
	// is [kernel.ErrNotSupported].
	ErrNotSupported = kernel.ErrNotSupported

	// ErrInitFlags: a compressed module must be loaded through
	// init_module, which cannot carry MODULE_INIT_IGNORE_* flags.
	ErrInitFlags = errors.New("init_module cannot ignore vermagic or modversions")
)

// loadErrno translates an errno from finit_module or init_module into a
// sentinel, keeping the errno. what names the object, e.g. the file path.
func loadErrno(err error, what string) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("load %s: %w", what, err)
	}
	var cat error
	switch errno {
	case unix.EEXIST:
		cat = ErrAlreadyLoaded
	case unix.EBUSY:
		cat = ErrBusy
	case unix.ENOEXEC:
		cat = ErrBadModule
	case unix.EINVAL:
		cat = ErrInvalid
	case unix.EKEYREJECTED, unix.ENOKEY, unix.EBADMSG, unix.ENOPKG:
		cat = ErrSignature
	case unix.EPERM:
		cat = ErrPermission
	case unix.ENOENT:
		cat = ErrUnknownSymbol
	case unix.ENODEV:
		cat = ErrNoDevice
	case unix.ENOSYS:
		cat = ErrNotSupported
	default:
		return fmt.Errorf("load %s: %w", what, err)
	}
	return fmt.Errorf("%w: load %s: %w", cat, what, err)
}

// deleteErrno translates an errno from delete_module into a sentinel,
// keeping the errno.
func deleteErrno(err error, name string) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("unload %s: %w", name, err)
	}
	var cat error
	switch errno {
	case unix.ENOENT:
		cat = ErrNotLoaded
	case unix.EAGAIN, unix.EBUSY:
		cat = ErrInUse
	case unix.EPERM:
		cat = ErrPermission
	case unix.ENOSYS:
		cat = ErrNotSupported
	default:
		return fmt.Errorf("unload %s: %w", name, err)
	}
	return fmt.Errorf("%w: unload %s: %w", cat, name, err)
}
