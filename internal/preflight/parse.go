package preflight

import (
	"bufio"
	"io"
	"strings"

	"github.com/klp-project/klp/internal/kallsyms"
)

// The parsers of the kernel's tracing files. Each takes what the kernel
// prints and skips lines it does not understand; only a read error is
// returned.

// parseFilterFunctions reads available_filter_functions: "name" for the
// core kernel, "name [module]" for a module; only wanted names are kept.
func parseFilterFunctions(rd io.Reader, wantNames map[string]bool) (map[objFunc]bool, error) {
	set := map[objFunc]bool{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !wantNames[f[0]] {
			continue
		}
		obj := kallsyms.Vmlinux
		if len(f) > 1 && strings.HasPrefix(f[1], "[") && strings.HasSuffix(f[1], "]") {
			obj = strings.Trim(f[1], "[]")
		}
		set[objFunc{obj, f[0]}] = true
	}
	return set, sc.Err()
}

// parseEnabledFunctions reads enabled_functions lines:
//
//	cmdline_proc_show (1) R I  	tramp: 0xffffffffc0201000 (klp_ftrace_handler+0x0/0x1d0) ...
//	klp_target_value [klp_target] (2) R
//
// The flags after the count are single letters (R regs, I IPMODIFY, D
// direct, O call ops, M modified, P permanent on 5.5-era kernels); absent
// ones print as spaces. Continuation lines start with a tab.
func parseEnabledFunctions(rd io.Reader, wantNames map[string]bool) (map[objFunc]string, error) {
	out := map[objFunc]string{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '\t' || line[0] == ' ' {
			continue
		}
		line, _, _ = strings.Cut(line, "\t")
		f := strings.Fields(line)
		if len(f) < 2 || !wantNames[f[0]] {
			continue
		}
		k := objFunc{kallsyms.Vmlinux, f[0]}
		i := 1
		if strings.HasPrefix(f[1], "[") && strings.HasSuffix(f[1], "]") {
			k.object = strings.Trim(f[1], "[]")
			i = 2
		}
		if i >= len(f) || !strings.HasPrefix(f[i], "(") {
			continue
		}
		var flags strings.Builder
		for _, tok := range f[i+1:] {
			if len(tok) != 1 {
				break
			}
			flags.WriteString(tok)
		}
		out[k] = flags.String()
	}
	return out, sc.Err()
}

// kprobe is one line of /sys/kernel/debug/kprobes/list:
//
//	ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]
//	ffffffffc0a01000  r  klp_target_value+0x0  klp_target [DISABLED][FTRACE]
//
// (kernel/kprobes.c report_probe: address, type k/r (j for old jprobes),
// symbol+offset, module name, then [GONE], [DISABLED], [OPTIMIZED] and
// [FTRACE] run together).
type kprobe struct {
	typ      string // "k", "r" or "j"
	object   string // "vmlinux" or the module
	function string
	offset   string // "0x0"
	flags    string // "[DISABLED][FTRACE]"
}

func (p kprobe) has(flag string) bool { return strings.Contains(p.flags, "["+flag+"]") }

func (p kprobe) kind() string {
	switch p.typ {
	case "r":
		return "kretprobe"
	case "j":
		return "jprobe"
	}
	return "kprobe"
}

func parseKprobes(rd io.Reader) ([]kprobe, error) {
	var out []kprobe
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
		p := kprobe{typ: f[1], object: kallsyms.Vmlinux, function: sym, offset: off}
		for _, tok := range f[3:] {
			if strings.HasPrefix(tok, "[") {
				p.flags += tok
			} else {
				p.object = tok
			}
		}
		out = append(out, p)
	}
	return out, sc.Err()
}
