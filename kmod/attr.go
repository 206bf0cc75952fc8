package kmod

import "github.com/klp-project/klp/internal/sysfile"

// AttrWriter is the seam through which attribute writes reach the kernel:
// module parameters here, and livepatch's enabled/force/signal in package
// livepatch. The kernel rejects a bad sysfs value in write(2) with an
// errno (EINVAL, EBUSY, EACCES...), which a file in a temporary directory
// cannot do, so tests substitute an implementation that validates the
// value the way the kernel's store function does (internal/fakekernel's
// Kernel.WriteAttr).
//
// Contract, shared by every implementation:
//   - path is the attribute's full path, below the caller's sysfs or
//     procfs root (e.g. "<sysroot>/kernel/livepatch/p/enabled");
//   - value is written as is, in one write(2), like `echo -n value > path`;
//     a trailing newline is the caller's choice (kstrtobool and kstrtoint
//     accept one);
//   - the file is never created: a missing attribute fails with an error
//     that satisfies errors.Is(err, fs.ErrNotExist) (ENOENT);
//   - the error is returned unwrapped apart from an [*os.PathError]
//     (Op "open" or "write"), so errors.Is(err, unix.EINVAL) etc. work and
//     the caller adds its own context and sentinel.
type AttrWriter interface {
	WriteAttr(path, value string) error
}

// FileAttrWriter is the real [AttrWriter]: open(O_WRONLY|O_TRUNC|O_CLOEXEC)
// and a single write. O_TRUNC is harmless on sysfs and procfs and is what
// the shell's ">" does. Writes need the right privileges (root, for
// livepatch attributes).
type FileAttrWriter struct{}

var _ AttrWriter = FileAttrWriter{}

// WriteAttr writes value to the attribute at path.
func (FileAttrWriter) WriteAttr(path, value string) error {
	return sysfile.WriteString(path, value)
}
