package snapshot

import (
	"errors"
	"fmt"
	"strings"
)

// Entry names of the archive besides the captured tree.
const (
	// ManifestName is the first entry: the [Manifest], JSON.
	ManifestName = "manifest.json"
	// PackedName holds the packed records (see the package comment).
	PackedName = "packed"
)

// TreeRoots are the top directories of the captured tree, one per root of
// a [kernel.Roots]: sysfs, procfs, /dev and /boot.
var TreeRoots = []string{"sys", "proc", "dev", "boot"}

// Name limits: deeper or longer names are nothing klp captures.
const (
	maxNameLen      = 1024
	maxComponentLen = 255
	maxDepth        = 16
)

// ErrBadName reports an archive path that is not a clean relative path
// below one of [TreeRoots].
var ErrBadName = errors.New("not a captured file's name")

// ValidName checks that name can be the archive path of a captured file:
// relative, clean (no "", "." or ".." component, no trailing "/"), below one
// of [TreeRoots], each component printable ASCII without space, '/' or '\'.
// The capture checks every name it builds from what it read (a module name,
// a directory entry of a copied tree) and the reader every name it is
// given, so that no name can climb out of the tree or break a packed
// record.
func ValidName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: %q is empty or longer than %d bytes", ErrBadName, name, maxNameLen)
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxDepth {
		return fmt.Errorf("%w: %q is deeper than %d levels", ErrBadName, name, maxDepth)
	}
	root := false
	for _, r := range TreeRoots {
		root = root || parts[0] == r
	}
	if !root {
		return fmt.Errorf("%w: %q is not below %s/", ErrBadName, name, strings.Join(TreeRoots, "/, "))
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || len(p) > maxComponentLen {
			return fmt.Errorf("%w: %q is not a clean relative path", ErrBadName, name)
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				return fmt.Errorf("%w: %q holds a byte that is not printable ASCII, a space or a backslash", ErrBadName, name)
			}
		}
	}
	return nil
}
