package pkgmeta

import (
	"strings"
)

// RPMVerCmp compares two rpm version (or release) strings the way rpm's
// rpmvercmp() does, returning -1, 0 or 1. zypper and rpm decide "newer"
// with this function, so downgrade and the update status must use exactly
// it, not a semantic-version or lexical order:
//
//   - the strings are split into runs of ASCII digits and runs of ASCII
//     letters; every other character only separates runs, so "1.0" equals
//     "1_0";
//   - digit runs compare as numbers (leading zeros ignored), letter runs
//     with strcmp, and a digit run is newer than a letter run ("1.1" >
//     "1.a");
//   - "~" sorts before anything, even the end of the string ("1.0~rc1" <
//     "1.0"), which is how pre-releases are spelled;
//   - "^" sorts after the end of the string but before anything else
//     ("1.0" < "1.0^git1" < "1.0.1"), which is how post-release snapshots
//     are spelled;
//   - when one string runs out first, the longer one is newer ("1.0" <
//     "1.0.1", "1.0" < "1.0a").
func RPMVerCmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}

		// Tilde sorts before everything else, the end included.
		if at(a, i) == '~' || at(b, j) == '~' {
			if at(a, i) != '~' {
				return 1
			}
			if at(b, j) != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}

		// Caret is like tilde, except that the end of the string (the
		// base version) sorts before it.
		if at(a, i) == '^' || at(b, j) == '^' {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if a[i] != '^' {
				return 1
			}
			if b[j] != '^' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}

		if i >= len(a) || j >= len(b) {
			break
		}

		// Take the run at i of a's kind (digits or letters) from both.
		si, sj := i, j
		isNum := isDigit(a[i])
		if isNum {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		one, two := a[si:i], b[sj:j]
		// b has a run of the other kind here: a number is newer than
		// letters.
		if two == "" {
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			one = strings.TrimLeft(one, "0")
			two = strings.TrimLeft(two, "0")
			// More digits is a larger number; this also avoids
			// overflowing on long digit runs such as dates.
			if len(one) != len(two) {
				if len(one) > len(two) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(one, two); c != 0 {
			return c
		}
	}
	// All runs were equal; whichever has characters left is newer. Only
	// the separators differed when both are at their end.
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i < len(a):
		return 1
	default:
		return -1
	}
}

// at returns s[i], or 0 past the end, like reading a C string's NUL.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// EVR is an rpm package's epoch, version and release.
type EVR struct {
	Epoch   string // decimal digits, "" for none (which counts as 0)
	Version string
	Release string // "" when absent
}

// ParseEVR splits "[EPOCH:]VERSION[-RELEASE]", the edition zypper prints
// and accepts after "NAME=". The release is what follows the last "-",
// as rpm's parseEVR has it; an epoch is only a prefix of digits before ":".
func ParseEVR(s string) EVR {
	var e EVR
	if i := strings.IndexByte(s, ':'); i > 0 && allDigits(s[:i]) {
		e.Epoch, s = s[:i], s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		e.Version, e.Release = s[:i], s[i+1:]
	} else {
		e.Version = s
	}
	return e
}

// String formats e as zypper does: the epoch only when it is not zero.
func (e EVR) String() string {
	s := e.Version
	if e.Release != "" {
		s += "-" + e.Release
	}
	if ep := strings.TrimLeft(e.Epoch, "0"); ep != "" {
		s = ep + ":" + s
	}
	return s
}

// CompareEVR orders two editions as rpm does (rpmverCmp, rpm.vercmp in
// Lua): epoch as a number, then version, then release with [RPMVerCmp]. A
// missing epoch is 0, and an edition without release sorts before any with
// one, so "2" < "2-1.1" and even "2" < "2-~1". (Dependency matching, where
// "2" matches any release, is a different question that downgrade never
// asks.)
func CompareEVR(a, b EVR) int {
	if c := compareNumeric(a.Epoch, b.Epoch); c != 0 {
		return c
	}
	if c := RPMVerCmp(a.Version, b.Version); c != 0 {
		return c
	}
	switch {
	case a.Release != "" && b.Release != "":
		return RPMVerCmp(a.Release, b.Release)
	case a.Release != "":
		return 1
	case b.Release != "":
		return -1
	}
	return 0
}

// compareNumeric compares two strings of decimal digits of any length;
// "" is 0.
func compareNumeric(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) > len(b) {
			return 1
		}
		return -1
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// DebVersionCompare compares two Debian versions "[EPOCH:]UPSTREAM[-REVISION]"
// as dpkg --compare-versions does, returning -1, 0 or 1. It differs from
// rpm's order: letters sort before every other non-digit, "~" before the
// end, and the revision is what follows the last "-".
func DebVersionCompare(a, b string) int {
	ea, ua, ra := splitDeb(a)
	eb, ub, rb := splitDeb(b)
	if c := compareNumeric(ea, eb); c != 0 {
		return c
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

func splitDeb(s string) (epoch, upstream, revision string) {
	if i := strings.IndexByte(s, ':'); i > 0 && allDigits(s[:i]) {
		epoch, s = s[:i], s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		return epoch, s[:i], s[i+1:]
	}
	return epoch, s, ""
}

// debOrder is dpkg's order(): digits 0 (they are handled apart), letters
// their ASCII value, "~" below everything including the end (0), and other
// characters above all letters.
func debOrder(c int) int {
	switch {
	case c >= 0 && isDigit(byte(c)):
		return 0
	case c >= 0 && isAlpha(byte(c)):
		return c
	case c == '~':
		return -1
	case c > 0:
		return c + 256
	}
	return 0
}

// verrevcmp is dpkg's verrevcmp(): alternate non-digit and digit parts.
func verrevcmp(a, b string) int {
	ch := func(s string, i int) int {
		if i < len(s) {
			return int(s[i])
		}
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debOrder(ch(a, i)), debOrder(ch(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i, j = i+1, j+1
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i, j = i+1, j+1
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
