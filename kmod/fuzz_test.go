package kmod

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

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

// FuzzParseModules: any /proc/modules content parses or fails cleanly; a
// parsed module has a name without white space.
func FuzzParseModules(f *testing.F) {
	f.Add([]byte("p 16384 1 - Live 0xffffffffc0a00000 (OEK)\nbase 8192 1 p, Live 0x0\n"))
	f.Add([]byte("x 1 - [permanent], Loading 0x0 (+-)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseModules(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Name == "" || strings.ContainsAny(m.Name, " \t\n") {
				t.Errorf("module %+v", m)
			}
			for _, h := range m.Holders {
				if h == "" || strings.ContainsAny(h, ", ") {
					t.Errorf("module %s holder %q", m.Name, h)
				}
			}
		}
	})
}
