package preflight

import (
	"errors"
	"fmt"

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

// symbolsNeeds: the kallsyms scan, when the patch names symbols.
func symbolsNeeds(m *modinfo.Module) need {
	if m.Targets == nil || len(wantedSymbols(m.Targets)) == 0 {
		return 0
	}
	return needKallsyms | needObjects
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
func symbols(f *facts) Check {
	t := f.module.Targets
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
	path, res, err := f.kallsyms.path, f.kallsyms.v, f.kallsyms.err
	if err != nil {
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "mount -t proc proc /proc, or point --procfs at a procfs tree")}
	}
	if res.Objects[kallsyms.Vmlinux] == 0 {
		return Check{Status: Skip, Reason: path + " lists no vmlinux symbols", Fix: "check the --procfs tree (and that the kernel has CONFIG_KALLSYMS)"}
	}
	r := resolveAll(f, want, res)
	failed, pending, details, firstErr := r.failed, r.pending, r.details, r.firstErr
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

// resolution is what [resolveAll] found.
type resolution struct {
	failed, pending []string // the symbols that do not resolve, and those not checked yet
	details         []string // one line per symbol
	firstErr        error    // why the first failed symbol does not resolve
}

// resolveAll looks each wanted symbol up in the scan as the kernel will,
// once its object is loaded.
func resolveAll(f *facts, want []wanted, res *kallsyms.Result) resolution {
	var r resolution
	for _, w := range want {
		loaded, lerr := objectLoaded(f, w.object, res)
		switch {
		case lerr != nil:
			r.pending = append(r.pending, w.String())
			r.details = append(r.details, w.String()+": "+lerr.Error())
		case !loaded:
			r.pending = append(r.pending, w.String())
			r.details = append(r.details, w.String()+": module "+w.object+" is not loaded; the kernel resolves it when the module loads, and refuses that module if it cannot")
		default:
			if err := res.Resolve(w.object, w.name, w.sympos); err != nil {
				r.failed = append(r.failed, w.String())
				r.details = append(r.details, w.String()+": "+kernelMessage(w, err))
				if r.firstErr == nil {
					r.firstErr = err
				}
			} else {
				r.details = append(r.details, fmt.Sprintf("%s: found (%s)", w, plural(res.Count(w.object, w.name), "occurrence", "occurrences")))
			}
		}
	}
	return r
}
