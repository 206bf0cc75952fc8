package kernel

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
)

// FuzzModuleNames: a name that passes ValidateModuleName is safe to join
// into a path, and the name rule is idempotent.
func FuzzModuleNames(f *testing.F) {
	for _, s := range []string{"livepatch-fix", "a/b", "..", "x\x00", "é", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := CleanModuleName(name)
		if err != nil {
			return
		}
		if clean == "" || len(clean) > MaxModuleNameLen || strings.ContainsAny(clean, "/.\\,-") ||
			strings.IndexFunc(clean, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
			t.Errorf("CleanModuleName(%q) = %q", name, clean)
		}
		if again, err := CleanModuleName(clean); err != nil || again != clean {
			t.Errorf("CleanModuleName(%q) = %q, %v: not idempotent", clean, again, err)
		}
		if !SameModule(name, clean) {
			t.Errorf("SameModule(%q, %q) = false", name, clean)
		}
	})
}

// FuzzParseVersion: a release either parses into a version that prints
// back into one with the same meaning, or fails cleanly.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"6.1.0-56-cloud-amd64", "6.12.117+deb12-cloud-amd64", "4.12", "x", "1.2.3.4", "9999999999.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, release string) {
		v, err := ParseVersion(release)
		if err != nil {
			return
		}
		again, err := ParseVersion(v.String())
		if err != nil || again != v {
			t.Errorf("ParseVersion(%q) = %v, which reads back as %v, %v", release, v, again, err)
		}
	})
}

// escapeKmsg escapes as the kernel does for /dev/kmsg: bytes < ' ', >= 127
// and '\' become \xNN.
func escapeKmsg(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 127 || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParseKmsgRecord: any record parses or fails cleanly, and any message
// the kernel escapes comes back as it was logged.
func FuzzParseKmsgRecord(f *testing.F) {
	f.Add([]byte("6,1234,5678,-;livepatch: enabling patch 'p'\n SUBSYSTEM=x\n"), "livepatch: 'p': patching complete")
	f.Add([]byte("3,1,2,-,caller=T1;symbol 'x' not found\\x0a"), "evil\x1b[2J\n1 /sbin/init")
	f.Add([]byte(";"), "\\x4")
	f.Fuzz(func(t *testing.T, b []byte, msg string) {
		if rec, err := ParseKmsgRecord(b); err == nil && (rec.Level < 0 || rec.Level > 7) {
			t.Errorf("ParseKmsgRecord(%q) level %d", b, rec.Level)
		}
		line := "4,7,99,-;" + escapeKmsg(msg) + "\n"
		rec, err := ParseKmsgRecord([]byte(line))
		if err != nil || rec.Message != msg || rec.Level != 4 || rec.Seq != 7 {
			t.Errorf("ParseKmsgRecord(%q) = %+v, %v; want message %q", line, rec, err, msg)
		}
	})
}
