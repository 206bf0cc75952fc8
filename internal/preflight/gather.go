package preflight

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/kallsyms"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// need is a set of fact groups: what a check looks at, and so what
// [gather] reads.
type need uint

const (
	// needInterface: the live patching interface; when there is none,
	// whether sysfs is mounted and, if it is, the kernel config (whether
	// CONFIG_LIVEPATCH is set).
	needInterface need = 1 << iota
	// needRelease: the kernel release.
	needRelease
	// needConfig: the kernel config.
	needConfig
	// needMachine: the release, and the kernel config when the module
	// was built for this release (the machine is compared only then).
	needMachine
	needModulesDisabled
	needFtrace
	needLockdown
	needSigEnforce
	needTaint
	needPatches
	needModules
	// needBuild: the loaded module's build identifiers, when the loaded
	// patches or modules could be read.
	needBuild
	needObjects
	needKallsyms
	needFilterFunctions
	needEnabledFunctions
	needKprobes
	// needBPF: the BPF programs attached to functions, and
	// fail_function's injections.
	needBPF
	// needLoadedStates: the klp_state entries of the loaded patches of a
	// kernel with replace sets (implies needPatches).
	needLoadedStates
)

// maxConfig caps a kernel config (a distribution's is about 250 KB).
const maxConfig = 16 << 20

// gather reads from in.Kernel the facts the needs ask for, each file once.
// Every read error is kept in the facts, for the checks to report; gather
// returns an error only when ctx is done.
func gather(ctx context.Context, in Inputs, needs need) (*facts, error) {
	k := in.Kernel
	r := &reader{ctx: ctx, k: k, lp: livepatch.New(k), km: kmod.New(k, kmod.Options{}), mod: in.Module, loadedModule: in.LoadedModule, needs: needs}
	r.f = &facts{
		module:       in.Module,
		livepatchDir: r.lp.LivepatchPath(),
		kgraftDir:    k.SysPath("kernel", "kgraft"),
	}
	r.f.release.path = k.ProcPath("sys", "kernel", "osrelease")
	r.f.patches.path = r.f.livepatchDir
	r.f.modules.path = k.ProcPath("modules")
	for _, read := range []func(){r.kernel, r.settings, r.loaded, r.scans} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		read()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.f, nil
}

// reader is one run of gather.
type reader struct {
	ctx context.Context
	k   *kernel.Handle
	lp  livepatch.FS
	km  *kmod.FS
	mod *modinfo.Module
	// loadedModule reads a loaded patch's module file (Inputs).
	loadedModule func(name string) (*modinfo.Module, error)
	needs        need
	f            *facts
}

func (r *reader) need(n need) bool { return r.needs&n != 0 }

// kernel reads the live patching interface, the release and the config.
func (r *reader) kernel() {
	f, k := r.f, r.k
	readConfig := r.need(needConfig)
	if r.need(needInterface) {
		f.iface = r.lp.Interface()
		if f.iface == livepatch.InterfaceNone {
			f.sysKernel = readDir(k, k.SysPath("kernel"))
			readConfig = readConfig || !f.sysKernel.empty
		}
	}
	if r.need(needRelease | needMachine) {
		f.release.v, f.release.err = k.Release()
	}
	if r.need(needMachine) && r.mod != nil && f.release.err == nil && builtFor(r.mod) == f.release.v {
		readConfig = true
	}
	if readConfig {
		f.config.v, f.config.err = readKernelConfig(k)
	}
}

// settings reads the sysctls and attributes that say whether the kernel
// loads modules, and on what terms.
func (r *reader) settings() {
	f, k := r.f, r.k
	if r.need(needModulesDisabled) {
		f.modulesDisabled = readAttr(k, k.ProcPath("sys", "kernel", "modules_disabled"))
		if errors.Is(f.modulesDisabled.err, fs.ErrNotExist) {
			// Both files come with CONFIG_MODULES.
			f.modulesListed = k.Exists(f.modules.path)
			if !f.modulesListed {
				f.procSysKernel = readDir(k, k.ProcPath("sys", "kernel"))
			}
		}
	}
	if r.need(needFtrace) {
		f.ftraceEnabled = readAttr(k, k.ProcPath("sys", "kernel", "ftrace_enabled"))
	}
	if r.need(needLockdown) {
		f.lockdown = readAttr(k, k.SysPath("kernel", "security", "lockdown"))
		if errors.Is(f.lockdown.err, fs.ErrNotExist) {
			f.securityfs = readDir(k, k.SysPath("kernel", "security"))
		}
	}
	if r.need(needSigEnforce) {
		f.sigEnforce = readAttr(k, k.SysPath("module", "module", "parameters", "sig_enforce"))
		if errors.Is(f.sigEnforce.err, fs.ErrNotExist) {
			f.sysModule = readDir(k, k.SysPath("module"))
		}
	}
	if r.need(needTaint) {
		f.tainted = readAttr(k, k.ProcPath("sys", "kernel", "tainted"))
	}
}

// loaded reads what is loaded: patches, modules, the loaded module of the
// patch's name, the target objects.
func (r *reader) loaded() {
	f := r.f
	if r.need(needPatches | needLoadedStates) {
		f.patches.v, f.patches.err = r.lp.Patches()
	}
	if r.need(needLoadedStates) && f.patches.err == nil && replaceSets(f.patches.v) {
		f.loadedStates = readLoadedStates(r.loadedModule, f.patches.v, r.mod)
	}
	if r.need(needModules) {
		f.modules.v, f.modules.err = r.km.Modules()
	}
	if r.need(needBuild) && r.mod != nil {
		_, perr := patchesOrNone(f)
		_, merr := modulesOrNone(f)
		if perr == nil || merr == nil {
			f.build = readBuild(r.k, r.mod)
		}
	}
	if r.need(needObjects) && r.mod != nil && r.mod.Targets != nil {
		f.objects = readObjectStates(r.k, r.km, r.mod.Targets)
	}
}

// scans reads the big files, megabytes each, for the module's names only.
func (r *reader) scans() {
	f, k := r.f, r.k
	if r.need(needKallsyms) {
		f.kallsyms = scanKallsyms(r.ctx, k, wantedSymbols(r.mod.Targets))
	}
	if r.need(needFilterFunctions) {
		f.filterFunctions = readFilterFunctions(r.ctx, k, targetNames(r.mod))
	}
	if r.need(needEnabledFunctions) {
		f.enabledFunctions = readEnabledFunctions(r.ctx, k, targetNames(r.mod))
	}
	if r.need(needBPF) {
		f.bpf = readBPF(k)
		f.failFunctions = readFailFunctions(k)
	}
	if r.need(needKprobes) {
		f.kprobes = readKprobes(r.ctx, k)
	}
}

// readLoadedStates reads the klp_state entries of every loaded patch but
// mod's from its module file; nil read means no way to find the files.
func readLoadedStates(read func(string) (*modinfo.Module, error), patches []livepatch.Patch, mod *modinfo.Module) map[string]reading[[]modinfo.KlpState] {
	if read == nil {
		return nil
	}
	out := map[string]reading[[]modinfo.KlpState]{}
	for _, p := range patches {
		if mod != nil && p.Name == mod.Name {
			continue
		}
		var st reading[[]modinfo.KlpState]
		m, err := read(p.Name)
		switch {
		case err != nil:
			st.err = err
		case m == nil || m.Targets == nil || m.Targets.States == nil:
			st.err = fmt.Errorf("the klp_state entries of its module file are unknown")
		default:
			st.v = m.Targets.States
		}
		out[p.Name] = st
	}
	return out
}

// readAttr reads a small file, white space trimmed.
func readAttr(k *kernel.Handle, path string) reading[string] {
	s, err := k.ReadString(path)
	return reading[string]{path: path, v: s, err: err}
}

// readDir tells whether a directory is missing or empty.
func readDir(k *kernel.Handle, path string) dir {
	entries, err := k.ReadDir(path)
	return dir{path: path, empty: err != nil || len(entries) == 0}
}

// readKernelConfig reads the running kernel's configuration.
// /proc/config.gz comes first because it is the running kernel's own
// (CONFIG_IKCONFIG_PROC); /boot/config-<release> is what distributions
// install next to the image, and could belong to another build of the same
// release.
func readKernelConfig(k *kernel.Handle) (*kconfig, error) {
	procPath := k.ProcPath("config.gz")
	c, err := readConfigFile(k, procPath, true)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	rel, rerr := k.Release()
	if rerr != nil {
		return nil, fmt.Errorf("%s does not exist, and the kernel release is unknown: %w", procPath, rerr)
	}
	bootPath := k.BootPath("config-" + rel)
	c, err = readConfigFile(k, bootPath, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound("neither " + bootPath + " nor " + procPath + " exists")
	}
	return c, err
}

func readConfigFile(k *kernel.Handle, path string, gz bool) (*kconfig, error) {
	f, err := k.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rd io.Reader = f
	if gz {
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		defer z.Close()
		rd = z
	}
	values, err := parseConfig(io.LimitReader(rd, maxConfig))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("read %s: no CONFIG_ options in it", path)
	}
	return &kconfig{values: values, source: path}, nil
}

// readBuild reads the build identifiers the module file carries
// (srcversion, then version) from the loaded module of the same name, up
// to the first one that module has.
func readBuild(k *kernel.Handle, m *modinfo.Module) []buildID {
	if kmod.ValidateName(m.Name) != nil {
		return nil
	}
	var out []buildID
	for _, key := range []string{"srcversion", "version"} {
		want, ok := m.Info.Get(key)
		if !ok || want == "" {
			continue
		}
		b := buildID{key: key, want: want, have: readAttr(k, k.SysPath("module", m.Name, key))}
		out = append(out, b)
		if b.have.err == nil && b.have.v != "" {
			break
		}
	}
	return out
}

// readObjectStates reads the state of every object the patch names, but
// vmlinux.
func readObjectStates(k *kernel.Handle, km *kmod.FS, t *modinfo.Targets) map[string]objectState {
	states := map[string]objectState{}
	add := func(obj string) {
		if _, ok := states[obj]; ok || obj == kallsyms.Vmlinux {
			return
		}
		st, err := moduleState(k, km, obj)
		states[obj] = objectState{state: st, err: err}
	}
	for _, o := range t.Objects {
		add(o.Name)
	}
	for _, fn := range t.Functions {
		add(fn.Object)
	}
	for _, s := range t.Symbols {
		add(s.Object)
	}
	return states
}

// moduleState says whether the module name is loaded, from
// /sys/module/<name> (see [objectState]).
func moduleState(k *kernel.Handle, km *kmod.FS, name string) (string, error) {
	if err := kmod.ValidateName(name); err != nil {
		return "", err
	}
	st, err := km.InitState(name)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, kmod.ErrNotLoaded) {
		return "", err
	}
	if k.IsDir(k.SysPath("module", name)) {
		return "builtin", nil
	}
	return "", nil
}

// scanKallsyms streams <procfs>/kallsyms once (about 10 MB), keeping only
// the wanted symbols. Only names are needed, so a non-root reader, who
// sees every address as 0, gets the same answer.
func scanKallsyms(ctx context.Context, k *kernel.Handle, want []wanted) reading[*kallsyms.Result] {
	r := reading[*kallsyms.Result]{path: k.ProcPath("kallsyms")}
	f, err := k.Open(r.path)
	if err != nil {
		r.err = err
		return r
	}
	defer f.Close()
	keys := make([]kallsyms.Key, 0, len(want))
	for _, w := range want {
		keys = append(keys, kallsyms.Key{Object: w.object, Name: w.name})
	}
	r.v, r.err = kallsyms.Scan(ctxReader{ctx, f}, keys)
	return r
}

// readFilterFunctions reads available_filter_functions for the wanted
// names.
func readFilterFunctions(ctx context.Context, k *kernel.Handle, wantNames map[string]bool) reading[filterFunctions] {
	r := reading[filterFunctions]{path: ftrace.New(k).TracingFile("available_filter_functions")}
	f, err := k.Open(r.path)
	if err != nil {
		r.err = err
		return r
	}
	defer f.Close()
	cr := &countReader{r: ctxReader{ctx, f}}
	set, err := parseFilterFunctions(cr, wantNames)
	if err != nil {
		r.err = err
		return r
	}
	r.v = filterFunctions{set: set, empty: cr.n == 0}
	return r
}

// readEnabledFunctions reads enabled_functions for the wanted names: the
// flags of each.
func readEnabledFunctions(ctx context.Context, k *kernel.Handle, wantNames map[string]bool) reading[map[objFunc]string] {
	ft := ftrace.New(k)
	r := reading[map[objFunc]string]{path: ft.EnabledFunctionsPath()}
	entries, err := ft.EnabledFunctions(ctx, func(name string) bool { return wantNames[name] })
	if err != nil {
		r.err = err
		return r
	}
	r.v = map[objFunc]string{}
	for _, e := range entries {
		r.v[objFunc{e.Object, e.Name}] = e.Flags
	}
	return r
}

// readKprobes reads <sysfs>/kernel/debug/kprobes/list.
func readKprobes(ctx context.Context, k *kernel.Handle) reading[[]ftrace.Kprobe] {
	ft := ftrace.New(k)
	r := reading[[]ftrace.Kprobe]{path: ft.KprobesPath()}
	r.v, r.err = ft.Kprobes(ctx)
	return r
}

// readBPF lists the BPF programs attached to kernel functions.
func readBPF(k *kernel.Handle) reading[[]kernel.BPFLink] {
	r := reading[[]kernel.BPFLink]{path: "bpf(2)"}
	r.v, r.err = k.BPFLinks()
	return r
}

// readFailFunctions lists fail_function's injections.
func readFailFunctions(k *kernel.Handle) reading[[]string] {
	ft := ftrace.New(k)
	r := reading[[]string]{path: ft.FailFunctionPath()}
	r.v, r.err = ft.FailFunctions()
	return r
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

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
