package kernel

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the numeric part of a kernel release: "6.1.0-56-cloud-amd64"
// is 6.1.0. Features are detected by the files the kernel offers wherever it
// offers one; the version decides only where no file can tell (which
// patches a forced transition pins, how kernel threads switch), and output
// that rests on it says so.
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion reads the leading "major.minor[.patch]" of a release.
func ParseVersion(release string) (Version, error) {
	num := release
	if i := strings.IndexFunc(num, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num = num[:i]
	}
	parts := strings.Split(strings.TrimSuffix(num, "."), ".")
	var v Version
	if len(parts) < 2 {
		return v, fmt.Errorf("%w: kernel release %q: want major.minor", ErrParse, release)
	}
	fields := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if i >= len(fields) {
			break
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 1<<20 {
			return Version{}, fmt.Errorf("%w: kernel release %q: want major.minor", ErrParse, release)
		}
		*fields[i] = n
	}
	return v, nil
}

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// String returns "major.minor.patch".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }
