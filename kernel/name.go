package kernel

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxModuleNameLen is MODULE_NAME_LEN-1 on 64-bit kernels
// (MODULE_NAME_LEN = 64 - sizeof(unsigned long)): the longest name a module,
// and so a live patch, can have.
const MaxModuleNameLen = 55

// moduleExts are the module file suffixes: kbuild's .ko and the compressed
// forms the kernel and kmod accept.
var moduleExts = []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"}

// ModuleExt returns the module suffix of a file name (".ko", ".ko.xz",
// ".ko.zst" or ".ko.gz"), or "" when it has none.
func ModuleExt(file string) string {
	for _, ext := range moduleExts {
		if strings.HasSuffix(file, ext) {
			return ext
		}
	}
	return ""
}

// ModuleName is the kernel's name rule: '-' and '_' are the same in a module
// name, and the kernel's spelling has '_'. Kbuild derives KBUILD_MODNAME from
// the file name this way (livepatch-fix.ko is loaded as livepatch_fix),
// delete_module and kmod's rmmod accept either spelling, and a live patch's
// directory under /sys/kernel/livepatch is named after its module. Every
// name a user types goes through this before it is compared or joined into a
// path. The result is not validated; see [ValidateModuleName].
func ModuleName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// FileModuleName returns the module name a module file stands for: the
// directory and the module suffix are dropped, then [ModuleName] applies
// ("/x/test-klp.ko.xz" gives "test_klp"). It is what kbuild names the module
// built from that file; the module's own .gnu.linkonce.this_module name
// (modinfo) is the authority when the file is at hand.
func FileModuleName(path string) string {
	base := filepath.Base(path)
	return ModuleName(strings.TrimSuffix(base, ModuleExt(base)))
}

// SameModule reports whether two spellings name the same module.
func SameModule(a, b string) bool { return ModuleName(a) == ModuleName(b) }

// ValidateModuleName reports whether name can be a kernel module name (and
// so a live patch name), which makes it safe to join into
// /sys/module/<name> or /sys/kernel/livepatch/<name>. It rejects the empty
// name, names longer than [MaxModuleNameLen] bytes, '/', '.', ',' (which
// would corrupt /proc/modules' holder list), '\', white space, control
// characters (C1 ones too: U+009B is a terminal's CSI) and invalid UTF-8.
// '-' is accepted: [ModuleName] maps it to '_'. The error wraps
// [ErrInvalidName] and quotes the name with its control characters escaped.
func ValidateModuleName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if len(name) > MaxModuleNameLen {
		return fmt.Errorf("%w %q: longer than %d bytes", ErrInvalidName, name, MaxModuleNameLen)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '.' || r == ',' || r == '\\':
			return fmt.Errorf("%w %q: a module name cannot contain %q", ErrInvalidName, name, r)
		case unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError:
			return fmt.Errorf("%w %q: a module name cannot contain white space, control characters or invalid UTF-8", ErrInvalidName, name)
		}
	}
	return nil
}

// CleanModuleName validates name and returns the kernel's spelling of it.
func CleanModuleName(name string) (string, error) {
	if err := ValidateModuleName(name); err != nil {
		return "", err
	}
	return ModuleName(name), nil
}
