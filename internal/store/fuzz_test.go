package store

import (
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
)

// FuzzModuleName: a file name in the store (which anyone who can write
// there controls) becomes a module name only when it is a valid one, and
// never a path.
func FuzzModuleName(f *testing.F) {
	for _, s := range []string{"livepatch-fix.ko", "x.ko.xz", "../../etc.ko", ".ko", "a b.ko.zst", "k\x1b.ko"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		name := moduleName(file)
		if name == "" {
			return
		}
		if kernel.ValidateModuleName(name) != nil || strings.ContainsAny(name, "/-") {
			t.Errorf("moduleName(%q) = %q", file, name)
		}
	})
}
