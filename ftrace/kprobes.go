package ftrace

import (
	"bufio"
	"io"
	"strings"
)

// Kprobe is one line of <debugfs>/kprobes/list:
//
//	ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]
//	ffffffffc0a01000  r  klp_target_value+0x0  klp_target [DISABLED][FTRACE]
//
// (kernel/kprobes.c, report_probe: address, type k/r (j for old jprobes),
// symbol+offset, module name, then [GONE], [DISABLED], [OPTIMIZED] and
// [FTRACE] run together). The list does not say who registered a probe,
// nor whether it has a post_handler.
type Kprobe struct {
	Type     string // "k", "r" or "j"
	Object   string // "vmlinux" or the module of the probed address
	Function string
	Offset   string // "0x0"
	Flags    string // "[DISABLED][FTRACE]"
}

// Has reports whether the probe has the flag ("FTRACE", "DISABLED", ...).
func (p Kprobe) Has(flag string) bool { return strings.Contains(p.Flags, "["+flag+"]") }

// Kind returns "kprobe", "kretprobe" or "jprobe".
func (p Kprobe) Kind() string {
	switch p.Type {
	case "r":
		return "kretprobe"
	case "j":
		return "jprobe"
	}
	return "kprobe"
}

// ParseKprobes reads the kprobe list; lines without a symbol are skipped.
func ParseKprobes(rd io.Reader) ([]Kprobe, error) {
	var out []Kprobe
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		sym, off, ok := strings.Cut(f[2], "+")
		if !ok {
			continue // "%pS" form without a symbol
		}
		p := Kprobe{Type: f[1], Object: Vmlinux, Function: sym, Offset: off}
		for _, tok := range f[3:] {
			if strings.HasPrefix(tok, "[") {
				p.Flags += tok
			} else {
				p.Object = tok
			}
		}
		out = append(out, p)
	}
	return out, sc.Err()
}
