// Package metrics is klp's Prometheus collector: the live patching state of
// one kernel, read afresh through its handle on every scrape, in the klp_
// namespace of docs/metrics.md. It serves both klp exporter and klp metrics
// (node_exporter's textfile collector).
package metrics

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// The sources of klp_scrape_errors_total: what could not be read.
const (
	SourceLivepatch = "livepatch" // /sys/kernel/livepatch or /sys/kernel/kgraft
	SourceModules   = "modules"   // /proc/modules and /sys/module
	SourceTaint     = "taint"     // /proc/sys/kernel/tainted
	SourceRelease   = "release"   // /proc/sys/kernel/osrelease
	SourceStore     = "store"     // the store of installed patches
	SourceTasks     = "tasks"     // /proc/<pid>/task/<tid>/patch_state
)

// sources are every source, so that each error counter exists from the
// first scrape.
var sources = []string{SourceLivepatch, SourceModules, SourceTaint, SourceRelease, SourceStore, SourceTasks}

// AlertTaints are the taint flags klp_kernel_taint reports: those that
// tell of a kernel that had a module forced in or out, an unsigned or
// out-of-tree module, or a serious problem (what vendors ask about before
// they support a patched kernel).
var AlertTaints = []byte("FROEDLMB")

const ns = "klp"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

var (
	descSupported = desc("livepatch_supported",
		"1 if the kernel has a live patching interface (/sys/kernel/livepatch, or SLE 12's /sys/kernel/kgraft).")
	descBuild = desc("build_info", "klp's version, always 1.", "version")

	descPatchInfo = desc("patch_info",
		"A loaded live patch, always 1: its module, replace and replace_set (/sys/kernel/livepatch/<patch>/replace and replace_set, \"\" where the kernel lacks them) and srcversion (/sys/module/<module>/srcversion).",
		"patch", "module", "replace", "replace_set", "srcversion")
	descPatchEnabled = desc("patch_enabled",
		"1 if the patch is enabled: /sys/kernel/livepatch/<patch>/enabled (kGraft: a function of it is active).", "patch")
	descPatchTransition = desc("patch_transition",
		"1 if the patch is in transition: /sys/kernel/livepatch/<patch>/transition.", "patch")
	descStackOrder = desc("patch_stack_order",
		"The patch's place on the kernel's stack of patches, 1 the oldest: /sys/kernel/livepatch/<patch>/stack_order (kernels 6.13 and later).", "patch")
	descObjectPatched = desc("object_patched",
		"1 if the patch's changes to the object (vmlinux or a module) are in place: /sys/kernel/livepatch/<patch>/<object>/patched.", "patch", "object")
	descPinned = desc("patch_pinned",
		"1 for a live patch module that lost its patch to a force but keeps its reference (/sys/module/<module>/refcnt): it can never be removed before a reboot.", "patch")

	descInProgress = desc("transition_in_progress",
		"1 while a transition is in progress: a patch's /sys/kernel/livepatch/<patch>/transition (kGraft: /sys/kernel/kgraft/in_progress).")
	descDuration = desc("transition_duration_seconds",
		"How long the transition of the patch has been in progress, since klp first saw it (the kernel records no start).", "patch")
	descStart = desc("transition_start_time_seconds",
		"When klp first saw the transition of the patch in progress, in seconds since the epoch.", "patch")
	descBlocking = desc("blocking_tasks",
		"Tasks not yet switched to the transition's target state, read from every /proc/<pid>/task/<tid>/patch_state while a transition is in progress; kind is user or kernel (a kernel thread).",
		"patch", "kind")

	descTaintedLivepatch = desc("kernel_tainted_livepatch",
		"1 if the kernel is tainted K, a live patch module has been loaded since boot: /proc/sys/kernel/tainted.")
	descTaint = desc("kernel_taint",
		"1 if the kernel is tainted with the flag (/proc/sys/kernel/tainted): F module force-loaded, R force-unloaded, O out-of-tree, E unsigned module, D oops, L soft lockup, M machine check, B bad page.",
		"flag")

	descInstalled = desc("installed_patches",
		"Patches installed in the store (/var/lib/klp/<release>, /var/lib/kpatch/<release>), by kernel release.", "release")
	descNotLoaded = desc("patch_installed_not_loaded",
		"1 for a patch installed for the running kernel (/var/lib/klp/<release>) that is not loaded (/proc/modules); 0 once it is.", "patch")

	descScrapeDuration = desc("scrape_duration_seconds", "How long reading the kernel's state took.")
	descScrapeErrors   = desc("scrape_errors_total",
		"Reads that failed since the collector started, by source (livepatch, modules, taint, release, store, tasks); the scrape reports what it could read.", "source")
)

var allDescs = []*prometheus.Desc{
	descSupported, descBuild, descPatchInfo, descPatchEnabled, descPatchTransition, descStackOrder,
	descObjectPatched, descPinned, descInProgress, descDuration, descStart, descBlocking,
	descTaintedLivepatch, descTaint, descInstalled, descNotLoaded, descScrapeDuration, descScrapeErrors,
}

// Options configure a [Collector].
type Options struct {
	// Version is klp's version, for klp_build_info.
	Version string
	// Store is where installed patches live.
	Store store.Store
	// Now is the clock (nil: time.Now); tests fix it.
	Now func() time.Time
}

// Collector reads the state of one kernel on every scrape. It remembers
// when it first saw each transition and counts failed reads; it is safe for
// concurrent scrapes.
type Collector struct {
	sys  *admin.System
	opts Options

	mu      sync.Mutex
	started map[string]time.Time // patch in transition: when first seen
	errs    map[string]float64   // source: failed reads
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a collector reading the kernel sys stands for.
func New(sys *admin.System, opts Options) *Collector {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{sys: sys, opts: opts, started: map[string]time.Time{}, errs: map[string]float64{}}
	for _, s := range sources {
		c.errs[s] = 0
	}
	return c
}

// Seen records that the transition of patch was first seen at t, unless a
// later scrape finds it over. klp metrics --textfile seeds it from its
// previous output (see [StartTimes]), since each run is a new process.
func (c *Collector) Seen(patch string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started[patch] = t
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of the kernel's state.
// A source that cannot be read is counted in klp_scrape_errors_total and
// its series are left out; the others are still reported.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.opts.Now()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s := c.sys
	g(descSupported, b2f(s.Interface() != livepatch.InterfaceNone))
	g(descBuild, 1, c.opts.Version)

	loaded := c.collectPatches(g)
	c.collectTransition(g, start)
	c.collectTaint(g)
	c.collectStore(g, loaded)

	g(descScrapeDuration, c.opts.Now().Sub(start).Seconds())
	for _, src := range sortedKeys(c.errs) {
		ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.CounterValue, c.errs[src], src)
	}
}

// collectPatches reports the loaded patches and returns the names of the
// loaded live patch modules (nil when they could not be read).
func (c *Collector) collectPatches(g func(*prometheus.Desc, float64, ...string)) map[string]bool {
	s := c.sys
	if s.Interface() == livepatch.InterfaceNone {
		// No interface: nothing is loaded, but /proc/modules still says
		// which patch modules are.
		return c.moduleNames()
	}
	// The store is read on its own (collectStore), so that an unreadable
	// store hides no patch.
	list, err := s.List(store.Store{})
	if err != nil {
		c.errs[SourceLivepatch]++
		return c.moduleNames()
	}
	var objects map[string][]livepatch.Object
	if s.Interface() == livepatch.InterfaceLivepatch {
		if pl, err := s.Patches(nil, 0); err != nil {
			c.errs[SourceLivepatch]++
		} else {
			objects = map[string][]livepatch.Object{}
			for _, p := range pl.Patches {
				if p.Upstream != nil {
					objects[p.Name] = p.Upstream.Objects
				}
			}
		}
	}
	loaded := map[string]bool{}
	for _, p := range list.Loaded {
		loaded[p.Name] = true
		switch p.State {
		case admin.StatePinned:
			g(descPinned, 1, p.Name)
			continue
		case admin.StateSuperseded:
			g(descPinned, 0, p.Name)
			continue
		}
		replace := ""
		if p.Replace != nil {
			replace = boolWord(*p.Replace)
		}
		replaceSet := ""
		if p.ReplaceSet != nil {
			replaceSet = strconv.FormatUint(uint64(*p.ReplaceSet), 10)
		}
		src, _ := s.Mod.Srcversion(p.Name) // optional: "" without MODULE_VERSION
		g(descPatchInfo, 1, p.Name, p.Name, replace, replaceSet, src)
		g(descPatchEnabled, b2f(p.State == admin.StateEnabled || p.State == admin.StatePatching), p.Name)
		g(descPatchTransition, b2f(p.State == admin.StatePatching || p.State == admin.StateUnpatching), p.Name)
		if p.StackOrder != nil {
			g(descStackOrder, float64(*p.StackOrder), p.Name)
		}
		for _, o := range objects[p.Name] {
			if o.Patched != nil {
				g(descObjectPatched, b2f(*o.Patched), p.Name, o.Name)
			}
		}
	}
	return loaded
}

// moduleNames are the loaded live patch modules, nil if unreadable.
func (c *Collector) moduleNames() map[string]bool {
	names, err := c.sys.LivepatchModules()
	if err != nil {
		c.errs[SourceModules]++
		return nil
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// collectTransition reports the transition in progress, how long it has
// run, and, only then, the tasks that block it.
func (c *Collector) collectTransition(g func(*prometheus.Desc, float64, ...string), now time.Time) {
	st, err := c.sys.Status()
	if err != nil {
		c.errs[SourceLivepatch]++
		return
	}
	g(descInProgress, b2f(st.InProgress))
	if !st.InProgress || st.Transition == nil {
		clear(c.started)
		return
	}
	patch := st.Transition.Patch
	for p := range c.started {
		if p != patch {
			delete(c.started, p)
		}
	}
	first, ok := c.started[patch]
	if !ok || first.After(now) {
		first = now
		c.started[patch] = now
	}
	g(descDuration, now.Sub(first).Seconds(), patch)
	g(descStart, float64(first.UnixNano())/1e9, patch)

	r, err := c.sys.Blocking(admin.BlockingOptions{})
	if err != nil {
		c.errs[SourceTasks]++
		return
	}
	if !r.Complete() {
		c.errs[SourceTasks]++
	}
	var user, kern float64
	for _, t := range r.Tasks {
		if t.KernelThread {
			kern++
		} else {
			user++
		}
	}
	if r.Transition != nil {
		patch = r.Transition.Patch
	}
	g(descBlocking, user, patch, "user")
	g(descBlocking, kern, patch, "kernel")
}

func (c *Collector) collectTaint(g func(*prometheus.Desc, float64, ...string)) {
	v, err := c.sys.K.Tainted()
	if err != nil {
		c.errs[SourceTaint]++
		return
	}
	g(descTaintedLivepatch, b2f(v&(1<<kernel.TaintLivepatch) != 0))
	for _, f := range kernel.TaintFlags {
		for _, l := range AlertTaints {
			if f.Letter == l {
				g(descTaint, b2f(v&(1<<f.Bit) != 0), string(l))
			}
		}
	}
}

// collectStore reports the installed patches, and those installed for the
// running kernel but not loaded (loaded nil: unknown, left out).
func (c *Collector) collectStore(g func(*prometheus.Desc, float64, ...string), loaded map[string]bool) {
	release, err := c.sys.Release()
	if err != nil {
		c.errs[SourceRelease]++
	}
	installed, err := c.opts.Store.List("")
	if err != nil {
		c.errs[SourceStore]++
		return
	}
	byRelease := map[string]float64{}
	if release != "" {
		byRelease[release] = 0
	}
	current := map[string]bool{}
	for _, in := range installed {
		byRelease[in.Release]++
		if in.Release == release {
			current[in.Name] = true
		}
	}
	for _, rel := range sortedKeys(byRelease) {
		g(descInstalled, byRelease[rel], rel)
	}
	if loaded == nil {
		return
	}
	for _, name := range sortedKeys(current) {
		g(descNotLoaded, b2f(!loaded[name]), name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func boolWord(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
