package preflight

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klp-project/klp/internal/kallsyms"
	"github.com/klp-project/klp/modinfo"
)

// wanted is one symbol a patch needs from its target objects.
type wanted struct {
	object, name string
	sympos       uint64
	klpSym       bool // a .klp.sym symbol (a reference), not a replaced function
}

func (w wanted) String() string {
	kind := "function"
	if w.klpSym {
		kind = "klp symbol"
	}
	return fmt.Sprintf("%s %s,%d in %s", kind, w.name, max(w.sympos, 1), w.object)
}

// wantedSymbols lists the replaced functions and the .klp.sym symbols, each
// once.
func wantedSymbols(t *modinfo.Targets) []wanted {
	var out []wanted
	seen := map[wanted]bool{}
	for _, f := range t.Functions {
		w := wanted{object: f.Object, name: f.Function, sympos: f.Sympos}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	for _, s := range t.Symbols {
		w := wanted{object: s.Object, name: s.Name, sympos: s.Sympos, klpSym: true}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// symbolScan is a kallsyms scan for the module's symbols.
type symbolScan struct{ res *kallsyms.Result }

// scanKallsyms streams <procfs>/kallsyms once (about 10 MB), keeping only
// the module's symbols. Only names are needed, so a non-root reader, who
// sees every address as 0, gets the same answer.
func (r *runner) scanKallsyms() (*kallsyms.Result, error) {
	s, err := r.kallsyms.get(func() (*symbolScan, error) {
		f, err := r.k.Open(r.proc("kallsyms"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var keys []kallsyms.Key
		for _, w := range wantedSymbols(r.mod.Targets) {
			keys = append(keys, kallsyms.Key{Object: w.object, Name: w.name})
		}
		res, err := kallsyms.Scan(ctxReader{r.ctx, f}, keys)
		if err != nil {
			return nil, err
		}
		return &symbolScan{res}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.res, nil
}

// kernelMessage is what the kernel logs when it cannot resolve a symbol
// (klp_find_object_symbol), so the e2e suite and users can match the log.
func kernelMessage(w wanted, err error) string {
	switch {
	case errors.Is(err, kallsyms.ErrNotFound):
		return fmt.Sprintf("symbol '%s' not found in symbol table", w.name)
	case errors.Is(err, kallsyms.ErrAmbiguous):
		return fmt.Sprintf("unresolvable ambiguity for symbol '%s' in object '%s'", w.name, w.object)
	case errors.Is(err, kallsyms.ErrSymposMissing):
		return fmt.Sprintf("symbol position %d for symbol '%s' in object '%s' not found", w.sympos, w.name, w.object)
	}
	return err.Error()
}

// symbols predicts klp_find_object_symbol for every replaced function and
// .klp.sym symbol: not found, ambiguous without sympos, or a sympos past the
// last occurrence all make klp_enable_patch (or the relocation of the
// patch module) fail with EINVAL. Symbols of a module that is not loaded
// are resolved when it loads, and then a failure refuses that module.
func (r *runner) symbols() Check {
	t := r.mod.Targets
	if t == nil {
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}
	}
	want := wantedSymbols(t)
	undetermined := len(t.Functions) == 0 && t.Undetermined != ""
	if len(want) == 0 {
		if undetermined {
			return Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
				Fix: "check the patch's source", Details: []string{"undetermined: " + t.Undetermined}}
		}
		return Check{Status: Pass, Reason: "the patch names no symbols"}
	}
	path := r.proc("kallsyms")
	res, err := r.scanKallsyms()
	if err != nil {
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "mount -t proc proc /proc, or point --procfs at a procfs tree")}
	}
	if res.Objects[kallsyms.Vmlinux] == 0 {
		return Check{Status: Skip, Reason: path + " lists no vmlinux symbols", Fix: "check the --procfs tree (and that the kernel has CONFIG_KALLSYMS)"}
	}
	var failed, pending, details []string
	var firstErr error
	for _, w := range want {
		loaded, lerr := r.objectLoaded(w.object, res)
		switch {
		case lerr != nil:
			pending = append(pending, w.String())
			details = append(details, w.String()+": "+lerr.Error())
		case !loaded:
			pending = append(pending, w.String())
			details = append(details, w.String()+": module "+w.object+" is not loaded; the kernel resolves it when the module loads, and refuses that module if it cannot")
		default:
			if err := res.Resolve(w.object, w.name, w.sympos); err != nil {
				failed = append(failed, w.String())
				details = append(details, w.String()+": "+kernelMessage(w, err))
				if firstErr == nil {
					firstErr = err
				}
			} else {
				details = append(details, fmt.Sprintf("%s: found (%s)", w, plural(res.Count(w.object, w.name), "occurrence", "occurrences")))
			}
		}
	}
	if undetermined {
		details = append(details, "the replaced functions could not be determined from the file: "+t.Undetermined)
	}
	switch {
	case len(failed) > 0:
		fix := "use the build of this patch made for this kernel: its symbols are not this kernel's"
		if errors.Is(firstErr, kallsyms.ErrAmbiguous) {
			fix = "rebuild the patch with old_sympos (klp_func) or the ,sympos of .klp.sym set to the intended copy's position in " + path
		}
		return Check{Status: Fail,
			Reason:  fmt.Sprintf("%d of %d symbols cannot be resolved, so the kernel refuses the patch (EINVAL): %s", len(failed), len(want), joinMax(failed, 3)),
			Fix:     fix,
			Details: details}
	case len(pending) > 0 || undetermined:
		c := Check{Status: Warn, Details: details, Fix: "load the target modules first to check them now, or load the patch and watch the target modules load"}
		if len(pending) > 0 {
			c.Reason = fmt.Sprintf("%d of %d symbols are in modules that are not loaded and cannot be checked until they load: %s", len(pending), len(want), joinMax(pending, 3))
		} else {
			c.Reason = fmt.Sprintf("all %d named symbols resolve, but the replaced functions could not all be determined from the file", len(want))
			c.Fix = "check the patch's source"
		}
		return c
	}
	reason := fmt.Sprintf("all %d symbols resolve as the kernel will look them up", len(want))
	if len(want) == 1 {
		reason = "the symbol resolves as the kernel will look it up"
	}
	return Check{Status: Pass, Reason: reason, Details: details}
}

// tracingFile returns a tracefs file from where tracefs is found: its own
// mount point /sys/kernel/tracing (4.1+), else the automount under debugfs.
func (r *runner) tracingFile(name string) string {
	return r.firstExisting(r.sys("kernel", "tracing", name), r.sys("kernel", "debug", "tracing", name))
}

// objFunc names a function by object ("vmlinux" for the core kernel) and
// name.
type objFunc struct{ object, name string }

// filterFunctions is the set of functions ftrace can attach to.
type filterFunctions struct{ set map[objFunc]bool }

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

// targetNames is the set of functions the module replaces.
func (r *runner) targetNames() map[string]bool {
	names := map[string]bool{}
	for _, fn := range r.mod.Targets.Functions {
		names[fn.Function] = true
	}
	return names
}

func (r *runner) filterFunctionSet() (*filterFunctions, error) {
	return r.ftraceFuncs.get(func() (*filterFunctions, error) {
		f, err := r.k.Open(r.tracingFile("available_filter_functions"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		set, err := parseFilterFunctions(ctxReader{r.ctx, f}, r.targetNames())
		if err != nil {
			return nil, err
		}
		return &filterFunctions{set}, nil
	})
}

// tracefsMountFix says how to make tracefs readable.
const tracefsMountFix = "run as root with tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing)"

// traceable: livepatch redirects a function through its ftrace call site,
// so a function ftrace cannot attach to (notrace, inlined everywhere, or
// without an fentry call) makes klp_patch_func fail with EINVAL ("failed to
// find location for function"). available_filter_functions lists the
// functions that have a call site.
func (r *runner) traceable() Check {
	t := r.mod.Targets
	if t == nil {
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}
	}
	if len(t.Functions) == 0 {
		if t.Undetermined != "" {
			return Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
				Fix: "check the patch's source", Details: []string{"undetermined: " + t.Undetermined}}
		}
		return Check{Status: Pass, Reason: "the patch replaces no functions"}
	}
	path := r.tracingFile("available_filter_functions")
	ff, err := r.filterFunctionSet()
	if err != nil {
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, tracefsMountFix)}
	}
	if len(ff.set) == 0 && r.tracingEmpty(path) {
		return Check{Status: Skip, Reason: path + " is empty", Fix: "check the tracefs mount"}
	}
	var failed, pending, details []string
	seen := map[objFunc]bool{}
	for _, fn := range t.Functions {
		k := objFunc{fn.Object, fn.Function}
		if seen[k] {
			continue
		}
		seen[k] = true
		label := fn.Function + " in " + fn.Object
		loaded, lerr := r.objectLoaded(fn.Object, nil)
		switch {
		case lerr != nil || !loaded:
			pending = append(pending, label)
			details = append(details, label+": module not loaded; checked by the kernel when it loads")
		case ff.set[k]:
			details = append(details, label+": traceable")
		default:
			failed = append(failed, label)
			details = append(details, label+": not in available_filter_functions; the kernel logs \"failed to find location for function '"+fn.Function+"'\"")
		}
	}
	switch {
	case len(failed) > 0:
		return Check{Status: Fail,
			Reason:  fmt.Sprintf("%s cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): %s", plural(len(failed), "function", "functions"), joinMax(failed, 3)),
			Fix:     "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
			Details: details}
	case len(pending) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("%s in modules that are not loaded cannot be checked: %s", plural(len(pending), "function", "functions"), joinMax(pending, 3)),
			Fix:     "load the target modules first to check them now",
			Details: details}
	}
	reason := fmt.Sprintf("all %d replaced functions can be traced", len(seen))
	if len(seen) == 1 {
		reason = "the replaced function can be traced"
	}
	return Check{Status: Pass, Reason: reason, Details: details}
}

// tracingEmpty reports whether a tracefs file has no lines at all.
func (r *runner) tracingEmpty(path string) bool {
	f, err := r.k.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var b [1]byte
	n, _ := f.Read(b[:])
	return n == 0
}

// enabledFunctions holds the ftrace flags of the functions that have
// ftrace users, from tracefs's enabled_functions.
type enabledFunctions struct{ flags map[objFunc]string }

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

func (r *runner) enabledFunctionFlags() (*enabledFunctions, error) {
	return r.enabledFns.get(func() (*enabledFunctions, error) {
		f, err := r.k.Open(r.tracingFile("enabled_functions"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		flags, err := parseEnabledFunctions(ctxReader{r.ctx, f}, r.targetNames())
		if err != nil {
			return nil, err
		}
		return &enabledFunctions{flags}, nil
	})
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

// kprobes looks for other ftrace users that would stop the patch. A
// function can have one IPMODIFY ftrace user; livepatch is one, so the
// kernel refuses the patch (EBUSY, "failed to register ftrace handler")
// when another IPMODIFY user is there already, except another live patch,
// whose ftrace ops the new patch shares. Since 5.4 ("kprobes: Allow kprobes
// coexist with livepatch") only a kprobe with a post_handler sets IPMODIFY;
// before, every kprobe placed on the ftrace call site did. kprobes/list
// does not show post handlers, but tracefs's enabled_functions shows the
// IPMODIFY flag ("I") itself, so that decides when it can be read.
func (r *runner) kprobes() Check {
	t := r.mod.Targets
	if t == nil {
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}
	}
	if len(t.Functions) == 0 {
		if t.Undetermined != "" {
			return Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
				Fix: "check the patch's source", Details: []string{"undetermined: " + t.Undetermined}}
		}
		return Check{Status: Pass, Reason: "the patch replaces no functions"}
	}
	listPath := r.sys("kernel", "debug", "kprobes", "list")
	enabledPath := r.tracingFile("enabled_functions")
	var probes []kprobe
	probesErr := func() error {
		f, err := r.k.Open(listPath)
		if err != nil {
			return err
		}
		defer f.Close()
		probes, err = parseKprobes(ctxReader{r.ctx, f})
		return err
	}()
	ef, efErr := r.enabledFunctionFlags()
	if probesErr != nil && efErr != nil {
		return Check{Status: Skip,
			Reason: why(listPath, probesErr) + "; " + why(enabledPath, efErr),
			Fix:    "run as root with debugfs mounted (mount -t debugfs none /sys/kernel/debug)"}
	}
	patched := map[objFunc][]string{} // functions loaded live patches already hook
	if patches, err := r.loadedPatches(); err == nil {
		for _, p := range patches {
			if p.Name == r.mod.Name {
				continue
			}
			for _, o := range p.Objects {
				for _, fn := range o.Functions {
					k := objFunc{o.Name, fn.Name}
					patched[k] = append(patched[k], p.Name)
				}
			}
		}
	}
	rel, _ := r.kernelRelease()
	oldKprobes := versionBefore(rel, 5, 4)
	var failed, warned, details []string
	seen := map[objFunc]bool{}
	for _, fn := range t.Functions {
		k := objFunc{fn.Object, fn.Function}
		if seen[k] {
			continue
		}
		seen[k] = true
		label := fn.Function + " in " + fn.Object
		ipmodify := ef != nil && strings.Contains(ef.flags[k], "I")
		// The IPMODIFY user is a conflict unless it is a live patch.
		conflict := ipmodify && len(patched[k]) == 0
		if ipmodify {
			if others := patched[k]; len(others) > 0 {
				details = append(details, label+": already hooked by live patch "+strings.Join(others, ", ")+" (shared, no conflict)")
			} else {
				failed = append(failed, label)
				details = append(details, label+": another ftrace user modifies its instruction pointer (IPMODIFY, flags \""+ef.flags[k]+"\" in enabled_functions): the kernel refuses the patch (EBUSY)")
			}
		}
		for _, p := range probes {
			if p.function != fn.Function || p.object != fn.Object {
				continue
			}
			desc := fmt.Sprintf("%s: %s at %s+%s %s", label, p.kind(), p.function, p.offset, p.flags)
			switch {
			case p.has("GONE"):
				continue
			case !p.has("FTRACE"):
				warned = append(warned, label)
				details = append(details, desc+": inside the function, not on its ftrace call site; it stops firing once the function is redirected")
			case p.has("DISABLED"):
				warned = append(warned, label)
				details = append(details, desc+": disabled now; enabling it later fails (EBUSY) if it has a post_handler")
			case oldKprobes && ef == nil:
				failed = append(failed, label)
				details = append(details, desc+": before Linux 5.4 every kprobe on the ftrace call site modifies the instruction pointer, so the kernel refuses the patch (EBUSY)")
			case conflict:
				details = append(details, desc+": probably the IPMODIFY user (a kprobe with a post_handler)")
			case ef != nil:
				warned = append(warned, label)
				details = append(details, desc+": it does not modify the instruction pointer, so it coexists with the patch; it keeps seeing calls to the original entry point")
			default:
				warned = append(warned, label)
				details = append(details, desc+": if it has a post_handler the kernel refuses the patch (EBUSY); "+why(enabledPath, efErr)+", so klp cannot tell")
			}
		}
	}
	failed, warned = dedup(failed), dedup(warned)
	switch {
	case len(failed) > 0:
		return Check{Status: Fail,
			Reason:  fmt.Sprintf("%s already %s an ftrace user that modifies the instruction pointer, so the kernel refuses the patch (EBUSY): %s", plural(len(failed), "function", "functions"), map[bool]string{true: "has", false: "have"}[len(failed) == 1], joinMax(failed, 3)),
			Fix:     "remove the conflicting probe (see " + listPath + " and " + enabledPath + ") before loading the patch",
			Details: details}
	case len(warned) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("kprobes on %s: %s", plural(len(warned), "replaced function", "replaced functions"), joinMax(warned, 3)),
			Fix:     "check that the probes' owners expect the function to be replaced",
			Details: details}
	}
	c := Check{Status: Pass, Reason: "no kprobe or other IPMODIFY ftrace user on the replaced functions", Details: details}
	switch {
	case probesErr != nil:
		c.Reason = "no other IPMODIFY ftrace user on the replaced functions (kprobes not listed: " + why(listPath, probesErr) + ")"
	case efErr != nil:
		c.Reason = "no kprobe on the replaced functions (other ftrace users not checked: " + why(enabledPath, efErr) + ")"
	}
	return c
}

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
