package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
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
	run       func(*runner) Check
}

// definitions lists the checks in report order.
var definitions = []definition{
	{IDLivepatchSupported, "Live patching support", false, true, (*runner).livepatchSupported},
	{IDModulesDisabled, "Module loading", false, true, (*runner).modulesDisabled},
	{IDFtraceEnabled, "ftrace", false, true, (*runner).ftraceEnabled},
	{IDReliableStacktrace, "Reliable stack traces", false, false, (*runner).reliableStacktrace},
	{IDLockdown, "Kernel lockdown", false, true, (*runner).lockdown},
	{IDSigEnforce, "Module signatures", false, true, (*runner).sigEnforce},
	{IDTaint, "Kernel taint", false, false, (*runner).taint},
	{IDTransition, "Transition in progress", false, true, (*runner).transition},
	{IDForcedPatch, "Forced patches", false, false, (*runner).forcedPatch},
	{IDLivepatchModule, "Livepatch module", true, true, (*runner).livepatchModule},
	{IDVermagic, "Kernel version (vermagic)", true, true, (*runner).vermagic},
	{IDAlreadyLoaded, "Already loaded", true, true, (*runner).alreadyLoaded},
	{IDReplace, "Atomic replace", true, false, (*runner).replace},
	{IDTargetModules, "Target modules", true, false, (*runner).targetModules},
	{IDSymbols, "Target symbols", true, false, (*runner).symbols},
	{IDTraceable, "Traceable functions", true, false, (*runner).traceable},
	{IDKprobes, "Kprobes and other ftrace users", true, false, (*runner).kprobes},
}

// IDs returns the IDs of the checks in report order; cheap selects the
// klp load subset. With module false, only the system checks.
func IDs(module, cheap bool) []string {
	var ids []string
	for _, d := range definitions {
		if (d.module && !module) || (cheap && !d.cheap) {
			continue
		}
		ids = append(ids, d.id)
	}
	return ids
}

// Run runs the checks. It returns an error only when ctx is done; every
// other problem is a check's status.
func Run(ctx context.Context, in Inputs) (*Report, error) {
	r := &runner{ctx: ctx, in: in, k: in.Kernel, lp: livepatch.New(in.Kernel), km: kmod.New(in.Kernel, kmod.Options{}), mod: in.Module}
	rep := &Report{Module: in.Module}
	for _, d := range definitions {
		if (d.module && in.Module == nil) || (in.Cheap && !d.cheap) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := d.run(r)
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

// runner holds one run's inputs and the files several checks share, each
// read at most once.
type runner struct {
	ctx context.Context
	in  Inputs
	k   *kernel.Handle
	lp  livepatch.FS
	km  *kmod.FS
	mod *modinfo.Module

	release     memo[string]
	config      memo[*kconfig]
	patches     memo[[]livepatch.Patch]
	modules     memo[kmod.Modules]
	lockdownLvl memo[string]
	enforce     memo[sigEnforcement]
	kallsyms    memo[*symbolScan]
	ftraceFuncs memo[*filterFunctions]
	enabledFns  memo[*enabledFunctions]
}

// memo caches one value and the error that came with it.
type memo[T any] struct {
	done bool
	v    T
	err  error
}

func (m *memo[T]) get(f func() (T, error)) (T, error) {
	if !m.done {
		m.v, m.err = f()
		m.done = true
	}
	return m.v, m.err
}

func (r *runner) sys(elem ...string) string  { return r.lp.SysPath(elem...) }
func (r *runner) proc(elem ...string) string { return r.lp.ProcPath(elem...) }

// kernelRelease reads <procfs>/sys/kernel/osrelease, as uname -r would
// print it for the kernel the roots describe.
func (r *runner) kernelRelease() (string, error) {
	return r.release.get(func() (string, error) {
		return r.k.Release()
	})
}

func (r *runner) loadedPatches() ([]livepatch.Patch, error) {
	return r.patches.get(r.lp.Patches)
}

func (r *runner) loadedModules() (kmod.Modules, error) {
	return r.modules.get(r.km.Modules)
}

// moduleState says whether the module name is loaded, from
// /sys/module/<name>: "live", "coming" or "going" (initstate), "builtin"
// (a directory without initstate: the code is part of vmlinux), or ""
// (not loaded).
func (r *runner) moduleState(name string) (string, error) {
	if err := kmod.ValidateName(name); err != nil {
		return "", err
	}
	st, err := r.km.InitState(name)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, kmod.ErrNotLoaded) {
		return "", err
	}
	if r.k.IsDir(r.sys("module", name)) {
		return "builtin", nil
	}
	return "", nil
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
// ("6.1.0-56-cloud-amd64" -> 6, 1). It is used only for behaviour the sysfs
// tree cannot show (docs/kernel-abi.md section 8, "Rules for klp").
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

// ctxReader stops a long scan (kallsyms is about 10 MB) when the context
// is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// firstExisting returns the first of paths that exists, or the first path.
func (r *runner) firstExisting(paths ...string) string {
	for _, p := range paths {
		if r.k.Exists(p) {
			return p
		}
	}
	return paths[0]
}

// dirEmpty reports whether dir is missing or has no entries: an unmounted
// pseudo-filesystem leaves an empty mount point.
func (r *runner) dirEmpty(dir string) bool {
	entries, err := r.k.ReadDir(dir)
	return err != nil || len(entries) == 0
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
