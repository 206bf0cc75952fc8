package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/modinfo"
)

// Status is the outcome of one check.
type Status string

const (
	// Pass: nothing in the way.
	Pass Status = "pass"
	// Warn: the load would go ahead, but something deserves attention.
	Warn Status = "warn"
	// Fail: the kernel (or klp load) would refuse the load.
	Fail Status = "fail"
	// Skip: the check could not be made (a file unreadable or absent); the
	// reason says what to do.
	Skip Status = "skip"
)

// Check IDs. They are stable: scripts match on them (docs/json.md).
const (
	IDLivepatchSupported = "livepatch_supported"
	IDModulesDisabled    = "modules_disabled"
	IDFtraceEnabled      = "ftrace_enabled"
	IDReliableStacktrace = "reliable_stacktrace"
	IDLockdown           = "lockdown"
	IDSigEnforce         = "sig_enforce"
	IDTaint              = "taint"
	IDTransition         = "transition_in_progress"
	IDForcedPatch        = "forced_patch"
	IDLivepatchModule    = "livepatch_module"
	IDVermagic           = "vermagic"
	IDAlreadyLoaded      = "already_loaded"
	IDReplace            = "replace"
	IDTargetModules      = "target_modules"
	IDSymbols            = "symbols"
	IDTraceable          = "traceable"
	IDKprobes            = "kprobes"
	IDSilentOverride     = "silent_override"
)

// Check is the outcome of one check.
type Check struct {
	ID     string
	Title  string
	Status Status
	// Reason is one line saying what was found.
	Reason string
	// Fix says what to do about a warn, fail or skip; "" for a pass.
	Fix string
	// Details are further lines (one per symbol, probe, patch...), shown
	// with -v.
	Details []string
}

// Inputs are what a preflight run reads.
type Inputs struct {
	// Kernel is the kernel to check: the running one, or a snapshot of
	// another machine. Its boot root holds config-<release>.
	Kernel *kernel.Handle
	// Module is the patch module to check, or nil for the system checks
	// only.
	Module *modinfo.Module
	// LoadedModule reads the module file of a loaded patch (nil: none can
	// be read), for what sysfs does not show of it: on a kernel with
	// replace sets, the klp_state ids that two sets may not share.
	LoadedModule func(name string) (*modinfo.Module, error)
	// Cheap runs only the checks klp load runs before loading: those that
	// read a few small files. The kallsyms and ftrace scans (megabytes) and
	// the checks that can only warn are left out.
	Cheap bool
}

// Report is the outcome of [Run].
type Report struct {
	// Module is Inputs.Module.
	Module *modinfo.Module
	// Checks in a fixed order: system checks, then module checks.
	Checks []Check
}

// Result is the worst status: fail if any check failed, warn if any
// warned or was skipped (a skipped check proves nothing), else pass.
func (r *Report) Result() Status {
	res := Pass
	for _, c := range r.Checks {
		switch c.Status {
		case Fail:
			return Fail
		case Warn, Skip:
			res = Warn
		}
	}
	return res
}

// Count returns how many checks have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Failed returns the failed checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// definition describes one check.
type definition struct {
	id, title string
	module    bool // needs a module
	cheap     bool // part of the klp load subset
	// check decides, from the facts alone.
	check func(*facts) Check
	// needs says which facts check looks at, for the module given (nil
	// for the system checks only).
	needs func(*modinfo.Module) need
}

// definitions lists the checks in report order.
var definitions = []definition{
	{id: IDLivepatchSupported, title: "Live patching support", cheap: true, check: livepatchSupported, needs: always(needInterface)},
	{id: IDModulesDisabled, title: "Module loading", cheap: true, check: modulesDisabled, needs: always(needModulesDisabled)},
	{id: IDFtraceEnabled, title: "ftrace", cheap: true, check: ftraceEnabled, needs: always(needFtrace)},
	{id: IDReliableStacktrace, title: "Reliable stack traces", check: reliableStacktrace, needs: always(needConfig | needRelease)},
	{id: IDLockdown, title: "Kernel lockdown", cheap: true, check: lockdown, needs: always(needLockdown)},
	{id: IDSigEnforce, title: "Module signatures", cheap: true, check: sigEnforce, needs: always(needSigEnforce | needLockdown)},
	{id: IDTaint, title: "Kernel taint", check: taint, needs: always(needTaint)},
	{id: IDTransition, title: "Transition in progress", cheap: true, check: transition, needs: always(needPatches)},
	{id: IDForcedPatch, title: "Forced patches", check: forcedPatch, needs: always(needModules | needPatches)},
	{id: IDLivepatchModule, title: "Livepatch module", module: true, cheap: true, check: livepatchModule, needs: always(0)},
	{id: IDVermagic, title: "Kernel version (vermagic)", module: true, cheap: true, check: vermagic, needs: always(needMachine)},
	{id: IDAlreadyLoaded, title: "Already loaded", module: true, cheap: true, check: alreadyLoaded, needs: alreadyLoadedNeeds},
	{id: IDReplace, title: "Atomic replace", module: true, check: replace, needs: replaceNeeds},
	{id: IDTargetModules, title: "Target modules", module: true, check: targetModules, needs: targetModulesNeeds},
	{id: IDSymbols, title: "Target symbols", module: true, check: symbols, needs: symbolsNeeds},
	{id: IDTraceable, title: "Traceable functions", module: true, check: traceable, needs: traceableNeeds},
	{id: IDKprobes, title: "Kprobes and other ftrace users", module: true, check: kprobes, needs: kprobesNeeds},
	{id: IDSilentOverride, title: "Silent overrides", module: true, check: silentOverride, needs: overrideNeeds},
}

// always is the needs of a check that looks at the same facts whatever the
// module.
func always(n need) func(*modinfo.Module) need {
	return func(*modinfo.Module) need { return n }
}

// selected returns the definitions of the checks a run makes, in report
// order: with module false, only the system checks; cheap selects the klp
// load subset.
func selected(module, cheap bool) []definition {
	var defs []definition
	for _, d := range definitions {
		if (d.module && !module) || (cheap && !d.cheap) {
			continue
		}
		defs = append(defs, d)
	}
	return defs
}

// IDs returns the IDs of the checks in report order; cheap selects the
// klp load subset. With module false, only the system checks.
func IDs(module, cheap bool) []string {
	var ids []string
	for _, d := range selected(module, cheap) {
		ids = append(ids, d.id)
	}
	return ids
}

// Run runs the checks: it reads the facts the selected checks need, then
// decides each check from them. It returns an error only when ctx is done;
// every other problem is a check's status.
func Run(ctx context.Context, in Inputs) (*Report, error) {
	defs := selected(in.Module != nil, in.Cheap)
	var needs need
	for _, d := range defs {
		needs |= d.needs(in.Module)
	}
	f, err := gather(ctx, in, needs)
	if err != nil {
		return nil, err
	}
	rep := &Report{Module: in.Module}
	for _, d := range defs {
		c := d.check(f)
		c.ID, c.Title = d.id, d.title
		if c.Status == Pass {
			c.Fix = ""
		}
		rep.Checks = append(rep.Checks, c)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return rep, nil
}

// why describes a read error for a reason line: the missing or unreadable
// file, and the usual cause.
func why(path string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path + " does not exist"
	case errors.Is(err, fs.ErrPermission):
		return path + " is not readable (permission denied)"
	}
	return fmt.Sprintf("cannot read %s: %v", path, err)
}

// readFixFor says what to do about a file that could not be read.
func readFixFor(err error, mount string) string {
	if errors.Is(err, fs.ErrPermission) {
		return "run as root"
	}
	if errors.Is(err, fs.ErrNotExist) {
		if mount != "" {
			return mount
		}
		return "check the --sysfs and --procfs trees (the running kernel always has this file)"
	}
	return "check that the file is readable"
}

// kernelVersion returns the major and minor version of a release string
// ("6.1.0-56-cloud-amd64" -> 6, 1). It is used only for behaviour no file
// of the kernel shows: whether a kernel refuses a patch without reliable
// stack traces (4.16 to 5.0), and whether every kprobe on a function's
// ftrace call site modifies the instruction pointer (before 5.4).
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, false
	}
	end := 0
	for end < len(parts[1]) && parts[1][end] >= '0' && parts[1][end] <= '9' {
		end++
	}
	min, err := strconv.Atoi(parts[1][:end])
	if err != nil {
		return 0, 0, false
	}
	return maj, min, true
}

// versionBefore reports whether release is known to be older than
// major.minor; an unparsable release is not.
func versionBefore(release string, major, minor int) bool {
	maj, min, ok := kernelVersion(release)
	return ok && (maj < major || (maj == major && min < minor))
}

// plural returns "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// joinMax joins up to max items and says how many more there are.
func joinMax(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}
