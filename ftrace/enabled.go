package ftrace

import (
	"bufio"
	"io"
	"strings"
)

// Vmlinux is the object name of the core kernel.
const Vmlinux = "vmlinux"

// Func names a function by object ([Vmlinux] or a module) and name.
type Func struct{ Object, Name string }

// String returns "name" for vmlinux, "name [module]" otherwise, as the
// kernel's tracing files print them.
func (f Func) String() string {
	if f.Object == Vmlinux || f.Object == "" {
		return f.Name
	}
	return f.Name + " [" + f.Object + "]"
}

// The flags of an enabled_functions line (kernel/trace/ftrace.c, t_show).
const (
	FlagRegs     = 'R' // an ftrace user wants the registers
	FlagIPModify = 'I' // an ftrace user changes the instruction pointer: a live patch, a kprobe with a post_handler, fail_function
	FlagDirect   = 'D' // a direct call: a BPF trampoline (fentry, fexit, fmod_ret, LSM programs)
	FlagCallOps  = 'O' // the call site calls one ftrace_ops directly (arm64, 6.4+)
	FlagModified = 'M' // the call site was modified by a direct-call user since it was set (a trampoline changed)
)

// Entry is one function of enabled_functions: a function that has ftrace
// users now.
type Entry struct {
	Func
	// Count is the number of ftrace users (the "(n)" field).
	Count int
	// Flags are the flag letters run together, "RID" say.
	Flags string
	// Tramp is what follows the flags on the line: the trampoline and
	// the ftrace handler ("tramp: 0x... (klp_ftrace_handler+0x0/0x1d0)"),
	// trimmed.
	Tramp string
	// Direct is the target of a direct call, from the continuation line
	// "\tdirect-->bpf_trampoline_6442...+0x0/0x...".
	Direct string
}

// Has reports whether the entry has flag.
func (e Entry) Has(flag rune) bool { return strings.ContainsRune(e.Flags, flag) }

// ParseEnabledFunctions reads enabled_functions:
//
//	cmdline_proc_show (1) R I   	tramp: 0xffffffffc0201000 (klp_ftrace_handler+0x0/0x1d0) ->klp_ftrace_handler+0x0/0x1d0
//	security_locked_down (2) R I D M 	tramp: ftrace_regs_caller+0x0/0x65 (call_direct_funcs+0x0/0x20)
//		direct-->bpf_trampoline_6442455436+0x0/0x6b
//	klp_target_value [klp_target] (1) R
//
// The flags after the count are single letters (see [FlagIPModify] and
// the others; 5.5-era kernels also print P, permanent); absent ones print
// as spaces. Lines of functions want rejects are skipped (nil keeps every
// function), and so is any line that does not have this layout.
func ParseEnabledFunctions(rd io.Reader, want func(name string) bool) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	keep := false // the last function line was kept: its continuation lines belong to it
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line[0] == '\t' || line[0] == ' ' {
			if d, ok := strings.CutPrefix(strings.TrimSpace(line), "direct-->"); ok && keep {
				out[len(out)-1].Direct = strings.TrimSpace(d)
			}
			continue
		}
		keep = false
		head, tramp, _ := strings.Cut(line, "\t")
		f := strings.Fields(head)
		if len(f) < 2 || want != nil && !want(f[0]) {
			continue
		}
		e := Entry{Func: Func{Vmlinux, f[0]}, Tramp: strings.TrimSpace(tramp)}
		i := 1
		if strings.HasPrefix(f[1], "[") && strings.HasSuffix(f[1], "]") {
			e.Object = strings.Trim(f[1], "[]")
			i = 2
		}
		if i >= len(f) || !strings.HasPrefix(f[i], "(") || !strings.HasSuffix(f[i], ")") {
			continue
		}
		e.Count = atoiOr(strings.Trim(f[i], "()"), -1)
		var flags strings.Builder
		for _, tok := range f[i+1:] {
			if len(tok) != 1 {
				break
			}
			flags.WriteString(tok)
		}
		e.Flags = flags.String()
		out = append(out, e)
		keep = true
	}
	return out, sc.Err()
}

// atoiOr parses a small non-negative decimal number, or returns def.
func atoiOr(s string, def int) int {
	if s == "" || len(s) > 9 {
		return def
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}
