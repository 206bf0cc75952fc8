package kmod

import (
	"bytes"
	"strings"
	"testing"
)

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
