package fakekernel

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
)

// Features select the kernel version being imitated: which livepatch
// attributes exist and which semantics apply. Use a preset
// ([Linux4_15], [Linux5_10], [Linux6_1], [Linux6_12], [Linux6_14], and
// the proposal [ProposedReplaceSet]) or build one; docs/fakekernel.md
// lists them.
type Features struct {
	// Pre51 selects the 4.12–5.0 semantics (klp_register_patch API): the
	// patch directory exists from registration until module removal, a
	// disabled patch stays visible with enabled=0 and can be re-enabled by
	// writing 1, the stacking rules apply (only the first disabled patch
	// can be enabled, only the last enabled one disabled; EBUSY
	// otherwise), atomic replace does not exist (Patch.Replace is
	// ignored), no periodic fake signal is sent, and a forced transition
	// stops every later module_put (global klp_forced).
	Pre51 bool
	// Signal: the signal attribute exists (4.15–5.0).
	Signal bool
	// Force: the force attribute exists (4.15+).
	Force bool
	// ForceMarksAll: forcing marks every patch on the list forced, so none
	// of them can ever drop its module reference (5.1 to about 5.18).
	// Otherwise (about 5.19+) only the patches being removed are marked:
	// the transition patch when unpatching, the replaced patches when a
	// replace patch is forced in.
	ForceMarksAll bool
	// Replace: the replace attribute exists (6.11+).
	Replace bool
	// StackOrder: the stack_order attribute exists (6.14+).
	StackOrder bool
	// Patched: <object>/patched exists (6.1+).
	Patched bool
	// CompressedFileFlag: finit_module knows MODULE_INIT_COMPRESSED_FILE
	// (5.17+). Without it the flag gives EINVAL.
	CompressedFileFlag bool
	// Decompress is the format the kernel decompresses itself
	// (CONFIG_MODULE_DECOMPRESS with CONFIG_MODULE_COMPRESS_<X>): "xz",
	// "zstd" or "gzip", shown in /sys/module/compression. "" means no
	// in-kernel decompression: the flag then gives EOPNOTSUPP.
	Decompress string
	// FtracePermanent: kernel.ftrace_enabled cannot be set to 0 while a
	// patch is applied (EBUSY, FTRACE_OPS_FL_PERMANENT, 5.5+).
	FtracePermanent bool
	// CondReschedSwitch: cond_resched() switches a kernel thread (6.4 to
	// 6.15), so one that runs without sleeping does not block. Before 6.4
	// and since 6.16 it blocks (see Kernel.SetRunning).
	CondReschedSwitch bool
	// TrampolineUnwind: the unwinder gets through a BPF trampoline (x86
	// ORC since December 2025, about 6.19), so a task sleeping under an
	// fexit, fmod_ret or LSM program has a reliable stack.
	TrampolineUnwind bool
	// ModifiedFlag: enabled_functions prints M for a function with an
	// IPMODIFY or direct-call user (seen on 6.12, not on 6.1).
	ModifiedFlag bool
	// ReplaceSet models the proposed replace sets (v2, May 2026, not
	// merged; docs/fakekernel.md): the replace_set attribute takes the
	// place of replace (Patch.ReplaceSet is the set; Patch.Replace is
	// ignored), every patch atomically replaces the patches of its own set
	// and only those, and a patch that changes a function a patch of
	// another set changes, or declares a klp_state id one of them declares,
	// is refused (EINVAL). Use with StackOrder false: the proposal drops
	// stack_order.
	ReplaceSet bool
	// SUSESupport models SUSE's support facility (CONFIG_SUSE_KERNEL_
	// SUPPORTED, in every SLE and openSUSE kernel): /sys/kernel/supported
	// and the sysctl /proc/sys/kernel/unsupported exist, and disabling a
	// patch (not reversing a patching transition) logs "livepatch: attempt
	// to disable live patch <name>, setting NO_SUPPORT taint flag" and sets
	// TaintNoSupport.
	SUSESupport bool
}

// Presets for the kernels klp cares about.
var (
	// Linux4_15 is a 4.15–5.0 kernel: register/unregister API, signal and
	// force attributes, no replace.
	Linux4_15 = Features{Pre51: true, Signal: true, Force: true}
	// Linux5_10 is a 5.5–5.18 kernel: sysfs dir removed on disable, atomic
	// replace without the replace attribute, force marks every patch.
	Linux5_10 = Features{Force: true, ForceMarksAll: true, FtracePermanent: true}
	// Linux6_1 is Debian 12's 6.1: objects' patched attribute; modules are
	// not compressed and CONFIG_MODULE_DECOMPRESS is off (assumption).
	Linux6_1 = Features{Force: true, Patched: true, CompressedFileFlag: true, FtracePermanent: true}
	// Linux6_12 is Debian's 6.12: adds the replace attribute; in-kernel xz
	// decompression is assumed (verify on the e2e kernel).
	Linux6_12 = Features{Force: true, Patched: true, Replace: true, CompressedFileFlag: true, Decompress: "xz", FtracePermanent: true,
		CondReschedSwitch: true, ModifiedFlag: true}
	// Linux6_14 adds stack_order.
	Linux6_14 = Features{Force: true, Patched: true, Replace: true, StackOrder: true, CompressedFileFlag: true, Decompress: "xz", FtracePermanent: true,
		CondReschedSwitch: true, ModifiedFlag: true}
	// Linux6_16 is 6.14 where cond_resched() no longer switches a kernel
	// thread: only a sleep with TASK_FREEZABLE does.
	Linux6_16 = Features{Force: true, Patched: true, Replace: true, StackOrder: true, CompressedFileFlag: true, Decompress: "xz", FtracePermanent: true,
		ModifiedFlag: true}
	// ProposedReplaceSet is 6.14 with the proposed replace sets: a
	// proposal, in no released kernel (docs/fakekernel.md). replace_set
	// instead of replace, no stack_order.
	ProposedReplaceSet = Features{Force: true, Patched: true, ReplaceSet: true, CompressedFileFlag: true, Decompress: "xz", FtracePermanent: true}
)

// Options configure a [Kernel]. The zero value imitates [Linux6_12] with
// [DefaultTasks], transitions that wait for [Kernel.Tick], and a kernel
// without signature enforcement or lockdown.
type Options struct {
	// Features selects the kernel version (zero value = Linux6_12).
	Features Features
	// Root is the directory the fake tree is built in. "" means a fresh
	// directory removed when the test ends: below /dev/shm when TMPDIR is
	// unset and /dev/shm is a writable tmpfs, else tb.TempDir(). (The tree
	// is scratch, and creating a file costs about 1 ms on a loaded ext4
	// against 20 µs on tmpfs: the difference between 15 s and 0.3 s for
	// this package's tests.)
	Root string
	// Tasks are the tasks in /proc (nil = DefaultTasks(); use an empty,
	// non-nil slice for none).
	Tasks []Task
	// SwitchOnStart makes the start of every transition try to switch all
	// tasks at once, as the kernel's first klp_try_complete_transition
	// does: with no blocked task the transition then completes inside the
	// load or the write, as on a 1-CPU guest. Default: the transition
	// stays open until Tick (as when other CPUs are busy).
	SwitchOnStart bool
	// AutoTick, if > 0, calls Tick at this interval of the machine's clock
	// from a goroutine until the test ends, for tests of readers that run
	// concurrently with the kernel's work. klp's own waits need no ticker:
	// they run on the fake's clock (see Kernel.Clock), whose retry work
	// ticks every second of it.
	AutoTick time.Duration
	// ReleaseDelay is how long, on the fake's clock, a freed patch's
	// module keeps its reference after the patch directory went
	// (klp_free_patch_finish removes the directory, then calls
	// module_put). 0: both in the same work item.
	ReleaseDelay time.Duration
	// NoLivepatch imitates a kernel without CONFIG_LIVEPATCH: no
	// /sys/kernel/livepatch, and livepatch modules fail with ENOEXEC.
	NoLivepatch bool
	// SigEnforce rejects unsigned modules (EKEYREJECTED).
	SigEnforce bool
	// Lockdown rejects unsigned modules with EPERM (integrity lockdown
	// without sig_enforce).
	Lockdown bool
	// Vermagic is the kernel's vermagic ("" = "6.12.0-fake SMP preempt
	// mod_unload modversions ").
	Vermagic string
	// LogCapacity is how many records the kernel log holds before the
	// oldest are overwritten (0 = 2048, about what the real ring buffer
	// holds); a watcher that falls further behind loses records (EPIPE).
	LogCapacity int
	// DynamicDebug also logs livepatch's pr_debug lines ("initializing
	// patching transition", "completing ...", "reversing ...", and
	// klp_try_switch_task's reason for each task it cannot switch), as
	// with `echo 'file kernel/livepatch/* +p' > .../dynamic_debug/control`.
	DynamicDebug bool
	// Tracefs renders what root sees of the ftrace users:
	// sys/kernel/tracing/enabled_functions,
	// sys/kernel/debug/kprobes/list and
	// sys/kernel/debug/dynamic_debug/control (livepatch's sites).
	Tracefs bool
	// Release is the kernel release, written to
	// proc/sys/kernel/osrelease ("" writes none).
	Release string
}

// Kernel is the fake kernel. All methods are safe for concurrent use.
type Kernel struct {
	mu   sync.Mutex
	opts Options
	f    Features

	root, sys, proc, dev, lib, tmp string

	boot time.Time

	// module files registered by tests, by inode and by content key
	files      []*moduleFile
	nextFileID int

	mods       []*module // loaded modules, in load order
	nextAddr   uint64
	patches    []*patch // every patch with a sysfs presence or on the list, in list order
	trans      *patch   // klp_transition_patch
	target     int      // klp_target_state: idle, unpatched, patched
	signals    int      // klp_signals_cnt
	klpForced  bool     // pre-5.1 global klp_forced
	holdIdle   bool     // an idle task (not in /proc) has not switched yet
	idleForced bool     // ...but force switched it for this transition
	work       []func() // pending "schedule_work" items (async frees)

	tasks   []*task
	taskMap map[int]*task

	tainted         uint64
	unsupported     int // SUSE's /proc/sys/kernel/unsupported
	once            map[string]bool
	ftraceEnabled   bool
	modulesDisabled bool
	symbols         map[string]int // "obj\x00name" -> count in kallsyms
	ipmodify        map[string]bool
	kprobes         []Kprobe
	bpf             []*bpfLink
	nextBPF         uint32
	bpfErr          error
	btfIDs          map[string]uint32

	log klog // the kernel log: dev/kmsg and its watchers

	// rendered tree: file path -> content written, dirs created
	written map[string]fileSpec
	dirs    map[string]bool

	stop  chan struct{}
	clock *clock // the fake's time, see clock.go

	faults faults   // injected read faults
	sent   []Signal // signals sent with Kill
}

const (
	stateIdle      = -1
	stateUnpatched = 0
	statePatched   = 1
)

// Taint bits (include/linux/panic.h).
const (
	TaintOOT       = 1 << 12 // O
	TaintUnsigned  = 1 << 13 // E
	TaintLivepatch = 1 << 15 // K
	// TaintNoSupport is SUSE's NO_SUPPORT taint (N), with SUSESupport only.
	TaintNoSupport = 1 << 31
)

// TB is the part of testing.TB the fake kernel uses; *testing.T,
// *testing.B and *testing.F satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// New builds a fake kernel tree in tb.TempDir() (or opts.Root) and
// returns the kernel that owns it.
func New(tb TB, opts Options) *Kernel {
	tb.Helper()
	if opts.Features == (Features{}) {
		opts.Features = Linux6_12
	}
	if opts.Root == "" {
		opts.Root = scratchDir(tb)
	}
	if opts.Vermagic == "" {
		opts.Vermagic = "6.12.0-fake SMP preempt mod_unload modversions "
	}
	if opts.Tasks == nil {
		opts.Tasks = DefaultTasks()
	}
	k := &Kernel{
		opts:          opts,
		f:             opts.Features,
		root:          opts.Root,
		sys:           filepath.Join(opts.Root, "sys"),
		proc:          filepath.Join(opts.Root, "proc"),
		dev:           filepath.Join(opts.Root, "dev"),
		lib:           filepath.Join(opts.Root, "lib", "modules"),
		tmp:           filepath.Join(opts.Root, ".tmp"),
		boot:          time.Now().Add(-5 * time.Second),
		nextAddr:      0xffffffffc0a00000,
		target:        stateIdle,
		taskMap:       map[int]*task{},
		once:          map[string]bool{},
		ftraceEnabled: true,
		unsupported:   2,
		symbols:       map[string]int{},
		ipmodify:      map[string]bool{},
		btfIDs:        map[string]uint32{},
		written:       map[string]fileSpec{},
		dirs:          map[string]bool{},
	}
	k.log.init(opts.LogCapacity)
	for _, d := range []string{k.sys, filepath.Join(k.sys, "module"), filepath.Join(k.sys, "kernel"),
		filepath.Join(k.proc, "sys", "kernel"), k.dev, k.lib, k.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatalf("fakekernel: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(k.dev, "kmsg"), nil, 0o644); err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	k.clock = newClock(k)
	k.mu.Lock()
	for _, t := range opts.Tasks {
		k.addTask(t)
	}
	k.sync()
	k.mu.Unlock()
	if opts.AutoTick > 0 {
		k.stop = make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(opts.AutoTick)
			defer t.Stop()
			for {
				select {
				case <-k.stop:
					return
				case <-t.C:
					k.Tick()
				}
			}
		}()
		tb.Cleanup(func() { close(k.stop); <-done })
	}
	return k
}

// scratchDir returns a temporary directory for the tree, removed at
// cleanup; see Options.Root.
func scratchDir(tb TB) string {
	if os.Getenv("TMPDIR") == "" {
		var st unix.Statfs_t
		if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
			if d, err := os.MkdirTemp("/dev/shm", "klp-fakekernel-"); err == nil {
				tb.Cleanup(func() { os.RemoveAll(d) })
				return d
			}
		}
	}
	return tb.TempDir()
}

// Root returns the directory holding the whole fake tree.
func (k *Kernel) Root() string { return k.root }

// SysRoot returns the fake sysfs mount point.
func (k *Kernel) SysRoot() string { return k.sys }

// ProcRoot returns the fake procfs mount point.
func (k *Kernel) ProcRoot() string { return k.proc }

// DevRoot returns the fake /dev (it holds kmsg, a regular file of
// records in /dev/kmsg's format).
func (k *Kernel) DevRoot() string { return k.dev }

// Roots returns the fake tree's roots: sys, proc, dev and boot below
// [Kernel.Root].
func (k *Kernel) Roots() kernel.Roots {
	return kernel.Roots{Sys: k.sys, Proc: k.proc, Dev: k.dev, Boot: filepath.Join(k.root, "boot")}
}

// Handle returns a read-only handle on the fake tree. Its reads go through
// the faults injected with [Kernel.InjectReadFault].
func (k *Kernel) Handle() *kernel.Handle {
	h, err := kernel.NewHandle(k.Roots(), faultFiles{k: k}, true)
	if err != nil {
		panic(fmt.Sprintf("fakekernel: %v", err)) // the roots are made by New
	}
	// Its BPF programs are the ones attached with AttachBPF.
	return h.WithBPF(k)
}

// Live returns the live handle of this kernel: its tree, read through
// [Kernel.Handle], every action (attribute writes, module syscalls,
// signals) taken by the fake kernel itself, never by the host, and waits
// on the fake's clock ([Kernel.Clock]).
func (k *Kernel) Live() *kernel.Live {
	return kernel.Simulate(k.Handle(), kernel.Seams{Attr: k, Modules: k, Signals: k, Log: k, Clock: k.clock})
}

// KmodOptions returns the kmod options this kernel needs: its
// decompressor (the module files it registers are not real compressed
// files).
func (k *Kernel) KmodOptions() kmod.Options {
	return kmod.Options{Decompress: k.Decompress}
}

// Loader returns a kmod.Loader on this kernel.
func (k *Kernel) Loader() *kmod.Loader {
	return kmod.NewLoader(k.Live(), k.KmodOptions())
}

var (
	_ kernel.ModuleSyscalls = (*Kernel)(nil)
	_ kernel.AttrWriter     = (*Kernel)(nil)
	_ kernel.Signaller      = (*Kernel)(nil)
)

// SetSymbol sets how many times name occurs in object's kallsyms ("" or
// "vmlinux" for vmlinux). 0 makes it missing ("symbol 'x' not found in
// symbol table"); more than 1 makes sympos 0 ambiguous. Symbols not set
// occur once.
func (k *Kernel) SetSymbol(object, name string, count int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.symbols[objName(object)+"\x00"+name] = count
}

// SetIPModifyConflict marks function as having another IPMODIFY ftrace
// user (a kprobe with a post_handler), so patching it fails with EBUSY
// (test-kprobe.sh).
func (k *Kernel) SetIPModifyConflict(function string, conflict bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ipmodify[function] = conflict
}

// Messages returns the messages logged so far.
func (k *Kernel) Messages() []string {
	return k.log.messages()
}

// Tainted returns /proc/sys/kernel/tainted.
func (k *Kernel) Tainted() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tainted
}

// TransitionPatch returns the name of the patch in transition, or "".
func (k *Kernel) TransitionPatch() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.trans == nil {
		return ""
	}
	return k.trans.name
}

// Loaded reports whether module name is loaded.
func (k *Kernel) Loaded(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.findMod(name) != nil
}

// Refcnt returns module name's reference count, or -1 if not loaded.
func (k *Kernel) Refcnt(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if m := k.findMod(name); m != nil {
		return m.refcnt
	}
	return -1
}

// Flush runs the pending asynchronous work now (the kernel's
// klp_free_patch_work_fn: removing a freed patch's directory and dropping
// its module reference). Tick also runs it first.
func (k *Kernel) Flush() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flush()
	k.sync()
}

func (k *Kernel) flush() {
	for len(k.work) > 0 {
		w := k.work[0]
		k.work = k.work[1:]
		w()
	}
}

// --- kernel log ---

// printk appends a record to the log (where watchers see it at once) and
// to dev/kmsg.
func (k *Kernel) printk(level int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	line := k.log.append(level, time.Since(k.boot), msg)
	f, err := os.OpenFile(filepath.Join(k.dev, "kmsg"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	f.WriteString(line)
	f.Close()
}

func (k *Kernel) printOnce(key string, level int, format string, args ...any) {
	if k.once[key] {
		return
	}
	k.once[key] = true
	k.printk(level, format, args...)
}

// klp logs a livepatch message (pr_fmt "livepatch: ").
func (k *Kernel) klp(level int, format string, args ...any) {
	k.printk(level, "livepatch: "+format, args...)
}

// klpDebug logs a livepatch pr_debug message if dynamic debug is on.
func (k *Kernel) klpDebug(format string, args ...any) {
	if k.opts.DynamicDebug {
		k.klp(7, format, args...)
	}
}

// Log levels.
const (
	lvlErr    = 3
	lvlWarn   = 4
	lvlNotice = 5
)

// escapeKmsg escapes like printk's msg_add_ext_text: bytes < ' ', >= 127
// and '\' become \xNN.
func escapeKmsg(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c >= 127 || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// --- rendering the tree ---

type fileSpec struct {
	content string
	mode    os.FileMode
	symlink bool
}

// sync renders modules, patches and the global proc files from the state
// and removes what no longer exists. Tasks are rendered as they change.
func (k *Kernel) sync() {
	want := map[string]fileSpec{}
	wantDirs := map[string]bool{}
	dir := func(p string) { wantDirs[p] = true }
	file := func(p, content string, mode os.FileMode) { want[p] = fileSpec{content: content, mode: mode} }

	// /proc
	file(filepath.Join(k.proc, "sys", "kernel", "tainted"), fmt.Sprintf("%d\n", k.tainted), 0o644)
	file(filepath.Join(k.proc, "sys", "kernel", "ftrace_enabled"), fmt.Sprintf("%d\n", b2i(k.ftraceEnabled)), 0o644)
	file(filepath.Join(k.proc, "sys", "kernel", "modules_disabled"), fmt.Sprintf("%d\n", b2i(k.modulesDisabled)), 0o644)
	var pm strings.Builder
	for i := len(k.mods) - 1; i >= 0; i-- { // newest first, as the kernel lists them
		pm.WriteString(k.mods[i].procLine())
	}
	file(filepath.Join(k.proc, "modules"), pm.String(), 0o444)
	if k.opts.Release != "" {
		file(filepath.Join(k.proc, "sys", "kernel", "osrelease"), k.opts.Release+"\n", 0o444)
	}
	if k.opts.Tracefs {
		for _, d := range []string{"tracing", "debug", filepath.Join("debug", "kprobes"), filepath.Join("debug", "dynamic_debug")} {
			dir(filepath.Join(k.sys, "kernel", d))
		}
		k.renderTracing(file)
	}
	if k.f.SUSESupport {
		// supported_printable() of the kernel's taint.
		supported := "Yes\n"
		if k.tainted&TaintNoSupport != 0 {
			supported = "No, Unsupported modules are loaded\n"
		}
		file(filepath.Join(k.sys, "kernel", "supported"), supported, 0o444)
		file(filepath.Join(k.proc, "sys", "kernel", "unsupported"), fmt.Sprintf("%d\n", k.unsupported), 0o644)
	}

	// /sys/module
	if k.f.Decompress != "" {
		file(filepath.Join(k.sys, "module", "compression"), k.f.Decompress+"\n", 0o444)
	}
	for _, m := range k.mods {
		d := filepath.Join(k.sys, "module", m.name)
		dir(d)
		file(filepath.Join(d, "refcnt"), fmt.Sprintf("%d\n", m.refcnt), 0o444)
		file(filepath.Join(d, "taint"), m.taints+"\n", 0o444)
		file(filepath.Join(d, "initstate"), "live\n", 0o444)
		file(filepath.Join(d, "coresize"), fmt.Sprintf("%d\n", m.size), 0o444)
		dir(filepath.Join(d, "holders"))
		for _, h := range m.holders {
			want[filepath.Join(d, "holders", h)] = fileSpec{content: "../../" + h, symlink: true}
		}
		if len(m.params) > 0 {
			dir(filepath.Join(d, "parameters"))
			for _, p := range m.params {
				mode := os.FileMode(0o444)
				if p.Writable {
					mode = 0o644
				}
				file(filepath.Join(d, "parameters", p.Name), p.Value+"\n", mode)
			}
		}
	}

	// /sys/kernel/livepatch
	if !k.opts.NoLivepatch {
		lp := filepath.Join(k.sys, "kernel", "livepatch")
		dir(lp)
		for _, p := range k.patches {
			if !p.sysfs {
				continue
			}
			d := filepath.Join(lp, p.name)
			dir(d)
			file(filepath.Join(d, "enabled"), fmt.Sprintf("%d\n", b2i(p.enabled)), 0o644)
			file(filepath.Join(d, "transition"), fmt.Sprintf("%d\n", b2i(p == k.trans)), 0o444)
			if k.f.Force {
				file(filepath.Join(d, "force"), "", 0o200)
			}
			if k.f.Signal {
				file(filepath.Join(d, "signal"), "", 0o200)
			}
			if k.f.ReplaceSet {
				file(filepath.Join(d, "replace_set"), fmt.Sprintf("%d\n", p.replaceSet), 0o444)
			} else if k.f.Replace && !k.f.Pre51 {
				file(filepath.Join(d, "replace"), fmt.Sprintf("%d\n", b2i(p.replace)), 0o444)
			}
			if k.f.StackOrder {
				file(filepath.Join(d, "stack_order"), fmt.Sprintf("%d\n", k.stackOrder(p)), 0o444)
			}
			if !p.objSysfs {
				continue
			}
			for _, o := range p.objs {
				od := filepath.Join(d, o.name)
				dir(od)
				if k.f.Patched {
					file(filepath.Join(od, "patched"), fmt.Sprintf("%d\n", b2i(o.patched)), 0o444)
				}
				for _, fn := range o.funcs {
					dir(filepath.Join(od, fn.dirName()))
				}
			}
		}
	}

	// Remove stale files, then stale directories (parents first is fine
	// with RemoveAll), then create directories and write files.
	for p := range k.written {
		if _, ok := want[p]; !ok && k.managed(p) {
			os.Remove(p)
			delete(k.written, p)
		}
	}
	var stale []string
	for d := range k.dirs {
		if !wantDirs[d] && k.managed(d) {
			stale = append(stale, d)
		}
	}
	sort.Strings(stale)
	for _, d := range stale {
		os.RemoveAll(d)
		delete(k.dirs, d)
		for p := range k.written {
			if strings.HasPrefix(p, d+string(filepath.Separator)) {
				delete(k.written, p)
			}
		}
	}
	var newDirs []string
	for d := range wantDirs {
		if !k.dirs[d] {
			newDirs = append(newDirs, d)
		}
	}
	sort.Strings(newDirs)
	for _, d := range newDirs {
		os.MkdirAll(d, 0o755)
		k.dirs[d] = true
	}
	for p, fs := range want {
		k.put(p, fs)
	}
}

// managed reports whether path is one sync renders (tasks and the kmsg
// file are rendered elsewhere).
func (k *Kernel) managed(p string) bool {
	if strings.HasPrefix(p, k.sys+string(filepath.Separator)) {
		return true
	}
	rel, err := filepath.Rel(k.proc, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	_, err = strconv.Atoi(first)
	return err != nil // /proc/<pid> belongs to the task code
}

// put writes one file unless it already has that content, so that a
// concurrent reader never sees a torn attribute: a new file (or a change
// of mode or many lines) goes through a temp file and rename(2); an
// update of a one-line attribute is written in place when that is just as
// safe and much cheaper (creating a directory entry costs about 1 ms on
// an ext4 TMPDIR, an in-place write about 10 µs), see inPlaceOK.
func (k *Kernel) put(p string, fs fileSpec) {
	old, ok := k.written[p]
	if ok && old == fs {
		return
	}
	if ok && !old.symlink && !fs.symlink && old.mode == fs.mode && inPlaceOK(old.content, fs.content) {
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			_, werr := f.WriteAt([]byte(fs.content), 0)
			terr := f.Truncate(int64(len(fs.content)))
			cerr := f.Close()
			if werr == nil && terr == nil && cerr == nil {
				k.written[p] = fs
				return
			}
		}
	}
	if fs.symlink {
		os.Remove(p)
		os.Symlink(fs.content, p)
		k.written[p] = fs
		return
	}
	tmp, err := os.CreateTemp(k.tmp, "w")
	if err != nil {
		return
	}
	tmp.WriteString(fs.content)
	tmp.Chmod(fs.mode)
	tmp.Close()
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return
	}
	k.written[p] = fs
}

// inPlaceOK reports whether overwriting old with new at offset 0 and then
// truncating never shows a reader anything that parses differently from
// old or new. Both must be a single line ending in "\n". If new is not
// shorter, the overwrite replaces everything old had. If it is one byte
// shorter, the moment between write and truncate shows new + "\n" (the
// last byte of old), which trims to the same value ("-1\n" -> "0\n"
// passes through "0\n\n"). Anything shorter could show digits of old.
func inPlaceOK(old, new string) bool {
	single := func(s string) bool {
		return len(s) > 0 && len(s) <= 64 && strings.IndexByte(s, '\n') == len(s)-1
	}
	return single(old) && single(new) && len(new) >= len(old)-1
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// objName maps "" to "vmlinux".
func objName(s string) string {
	if s == "" {
		return "vmlinux"
	}
	return s
}
