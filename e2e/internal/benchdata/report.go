package benchdata

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// SchemaVersion is the version of the JSON document that [Report] encodes.
const SchemaVersion = 1

// Stat is the minimum, median and maximum of N values.
type Stat struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// NewStat summarises values; it returns nil for none.
func NewStat(values []float64) *Stat {
	if len(values) == 0 {
		return nil
	}
	v := slices.Clone(values)
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &Stat{Min: v[0], Median: med, Max: v[len(v)-1], N: len(v)}
}

// Figure summarises the samples of one command at one thread count.
type Figure struct {
	Threads int    `json:"threads"`
	Tasks   int    `json:"tasks"` // the most tasks seen in /proc during its samples
	Command string `json:"command"`
	Kind    string `json:"kind"`
	// Wall is a scan's run time in seconds (scans only).
	Wall *Stat `json:"wall_s,omitempty"`
	// Latency and CPUPerSec are a waiter's (waits only).
	Latency    *Stat   `json:"latency_s,omitempty"`
	LatencyErr float64 `json:"latency_err_s,omitempty"` // the largest error bound of its samples
	CPUPerSec  *Stat   `json:"cpu_per_s,omitempty"`
	// CPUPerSecTicks is CPUPerSec as /proc/<pid>/stat's clock ticks
	// count it (results with a cgroup's exact figure only).
	CPUPerSecTicks *Stat `json:"cpu_per_s_ticks,omitempty"`
	// RunsPerSec is how often the waiter was put on a CPU (results
	// from before it was measured have none).
	RunsPerSec *Stat `json:"runs_per_s,omitempty"`
	MaxRSS     *Stat `json:"max_rss_kib,omitempty"`
	// Errors are the errors of the samples left out.
	Errors []string `json:"errors,omitempty"`
}

// Ratio is the ratio of two medians at one thread count. Value is nil
// when the denominator is zero or a figure is missing.
type Ratio struct {
	Name    string   `json:"name"`
	Threads int      `json:"threads"`
	Value   *float64 `json:"value"`
}

// Target is one of the performance targets of klp, checked against this
// run: Value compared with Limit (Pass), Detail in words.
type Target struct {
	Name    string   `json:"name"`
	Threads int      `json:"threads"`
	Command string   `json:"command"`
	Value   *float64 `json:"value"`
	Limit   float64  `json:"limit"`
	Pass    bool     `json:"pass"`
	Detail  string   `json:"detail"`
}

// HostEnv is what the host says about the run.
type HostEnv struct {
	CPUModel    string    `json:"cpu_model"`
	CPUs        int       `json:"cpus"`
	Kernel      string    `json:"kernel"`
	QEMU        string    `json:"qemu"`
	Accel       string    `json:"accel"`
	VCPUs       int       `json:"vcpus"`
	Memory      string    `json:"guest_memory"`
	Commit      string    `json:"commit"`
	LoadBefore  string    `json:"loadavg_before"`
	LoadAfter   string    `json:"loadavg_after"`
	LoadSamples []float64 `json:"loadavg_1min_samples"` // every 30 s during the run
	OtherQEMU   int       `json:"other_qemu_max"`       // the most other QEMU processes seen during the run
	Duration    float64   `json:"duration_s"`           // boot to power-off
}

// Report is the JSON document of one run on one vCPU count.
type Report struct {
	SchemaVersion int      `json:"schema_version"`
	Date          string   `json:"date"`
	Host          HostEnv  `json:"host"`
	Guest         GuestEnv `json:"guest"`
	Threads       []int    `json:"threads"`
	Figures       []Figure `json:"figures"`
	Ratios        []Ratio  `json:"ratios"`
	Targets       []Target `json:"targets"`
	Notes         []string `json:"notes"`
	Samples       []Sample `json:"samples"`
}

// NewReport summarises a guest's samples.
func NewReport(g *Guest, host HostEnv, date string) *Report {
	r := &Report{SchemaVersion: SchemaVersion, Date: date, Host: host, Notes: g.Notes, Samples: g.Samples}
	if r.Notes == nil {
		r.Notes = []string{}
	}
	if r.Samples == nil {
		r.Samples = []Sample{}
	}
	if g.Env != nil {
		r.Guest = *g.Env
	}
	for _, s := range g.Samples {
		if !slices.Contains(r.Threads, s.Threads) {
			r.Threads = append(r.Threads, s.Threads)
		}
	}
	sort.Ints(r.Threads)
	for _, n := range r.Threads {
		for _, cmd := range append(slices.Clone(ScanCommands), WaitCommands...) {
			if f, ok := summarise(g.Samples, n, cmd); ok {
				r.Figures = append(r.Figures, f)
			}
		}
	}
	r.Ratios = r.ratios()
	r.Targets = r.targets()
	return r
}

func summarise(samples []Sample, threads int, cmd string) (Figure, bool) {
	f := Figure{Threads: threads, Command: cmd}
	var wall, lat, cpu, ticks, runs, rss []float64
	seen := false
	for _, s := range samples {
		if s.Threads != threads || s.Command != cmd {
			continue
		}
		seen = true
		f.Kind = s.Kind
		f.Tasks = max(f.Tasks, s.Tasks)
		if s.Error != "" {
			f.Errors = append(f.Errors, s.Error)
			continue
		}
		rss = append(rss, float64(s.MaxRSS))
		if s.Kind == KindScan {
			wall = append(wall, s.Wall)
			continue
		}
		if s.Latency != nil {
			lat = append(lat, *s.Latency)
			f.LatencyErr = max(f.LatencyErr, s.LatencyErr)
		}
		if s.CPUPerSec != nil {
			cpu = append(cpu, *s.CPUPerSec)
		}
		if s.CPUPerSecTicks != nil {
			ticks = append(ticks, *s.CPUPerSecTicks)
		}
		if s.RunsPerSec != nil {
			runs = append(runs, *s.RunsPerSec)
		}
	}
	f.Wall, f.Latency, f.CPUPerSec, f.MaxRSS = NewStat(wall), NewStat(lat), NewStat(cpu), NewStat(rss)
	f.CPUPerSecTicks, f.RunsPerSec = NewStat(ticks), NewStat(runs)
	return f, seen
}

// Figure returns the figure of cmd at threads, or nil.
func (r *Report) Figure(threads int, cmd string) *Figure {
	for i := range r.Figures {
		if r.Figures[i].Threads == threads && r.Figures[i].Command == cmd {
			return &r.Figures[i]
		}
	}
	return nil
}

// median returns a statistic's median, selected by pick, of cmd at threads.
func (r *Report) median(threads int, cmd string, pick func(*Figure) *Stat) (float64, bool) {
	f := r.Figure(threads, cmd)
	if f == nil {
		return 0, false
	}
	s := pick(f)
	if s == nil {
		return 0, false
	}
	return s.Median, true
}

func wallOf(f *Figure) *Stat { return f.Wall }
func cpuOf(f *Figure) *Stat  { return f.CPUPerSec }
func rssOf(f *Figure) *Stat  { return f.MaxRSS }
func latOf(f *Figure) *Stat  { return f.Latency }
func divide(a, b float64) *float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return nil
	}
	v := a / b
	return &v
}

// ratioOf is the ratio of two medians, nil when either is missing.
func (r *Report) ratioOf(n1 int, c1 string, n2 int, c2 string, pick func(*Figure) *Stat) *float64 {
	a, ok1 := r.median(n1, c1, pick)
	b, ok2 := r.median(n2, c2, pick)
	if !ok1 || !ok2 {
		return nil
	}
	return divide(a, b)
}

// Names of the ratios.
const (
	RatioKlpFloor     = "klp blocking / C scanner"
	RatioKlpJSONFloor = "klp blocking --json / C scanner"
	RatioBashKlp      = "bash loop / klp blocking"
	RatioKpatchKlp    = "kpatch (fork per task) / klp blocking"
	RatioMetricsKlp   = "klp metrics / klp blocking"
	RatioWaitPoll     = "klp wait CPU / 1 s poll loop CPU"
	RatioWaitTTYPoll  = "klp wait (terminal) CPU / 1 s poll loop CPU"
	RatioWaitGrowth   = "klp wait CPU / its CPU at the fewest threads"
	RatioWaitTTYGrow  = "klp wait (terminal) CPU / its CPU at the fewest threads"
	ratioRSSPrefix    = "max RSS / at the fewest threads: "
)

// RatioRSS names the memory growth ratio of cmd.
func RatioRSS(cmd string) string { return ratioRSSPrefix + cmd }

func (r *Report) ratios() []Ratio {
	out := []Ratio{}
	if len(r.Threads) == 0 {
		return out
	}
	first := r.Threads[0]
	add := func(name string, n int, v *float64) {
		if v != nil {
			out = append(out, Ratio{Name: name, Threads: n, Value: v})
		}
	}
	for _, n := range r.Threads {
		add(RatioKlpFloor, n, r.ratioOf(n, CmdKlpBlocking, n, CmdCScan, wallOf))
		add(RatioKlpJSONFloor, n, r.ratioOf(n, CmdKlpBlockingJSON, n, CmdCScan, wallOf))
		add(RatioBashKlp, n, r.ratioOf(n, CmdBash, n, CmdKlpBlocking, wallOf))
		add(RatioKpatchKlp, n, r.ratioOf(n, CmdKpatch, n, CmdKlpBlocking, wallOf))
		add(RatioMetricsKlp, n, r.ratioOf(n, CmdKlpMetrics, n, CmdKlpBlocking, wallOf))
		add(RatioWaitPoll, n, r.ratioOf(n, CmdKlpWait, n, CmdPoll, cpuOf))
		add(RatioWaitTTYPoll, n, r.ratioOf(n, CmdKlpWaitTTY, n, CmdPoll, cpuOf))
		add(RatioWaitGrowth, n, r.ratioOf(n, CmdKlpWait, first, CmdKlpWait, cpuOf))
		add(RatioWaitTTYGrow, n, r.ratioOf(n, CmdKlpWaitTTY, first, CmdKlpWaitTTY, cpuOf))
		for _, cmd := range append(slices.Clone(ScanCommands), WaitCommands...) {
			add(RatioRSS(cmd), n, r.ratioOf(n, cmd, first, cmd, rssOf))
		}
	}
	return out
}

// Ratio returns the named ratio at threads, or nil.
func (r *Report) Ratio(name string, threads int) *float64 {
	for _, x := range r.Ratios {
		if x.Name == name && x.Threads == threads {
			return x.Value
		}
	}
	return nil
}

// Limits of the targets.
const (
	// ScanFloorOneCPU: from 10,000 threads up, klp's scan takes at most
	// 1.2 times the C scanner's time on one vCPU, and less than it on
	// more.
	ScanFloorOneCPU = 1.2
	ScanFloorFrom   = 10000
	// WaitCPUVsPoll: at 30,000 threads, waiting costs at most a tenth of
	// the CPU of a 1 s bash poll loop.
	WaitCPUVsPoll  = 0.1
	WaitCPUThreads = 30000
	WaitLatencyOne = 0.010 // median seconds from completion to return, one vCPU
	// ProgressPace is the share of a CPU the progress line's count of the
	// tasks may take on a terminal (internal/admin's countBusy).
	ProgressPace    = 0.02
	MemoryFlatLimit = 1.2 // peak RSS at the most threads / at the fewest
	// tick is the resolution of /proc/<pid>/stat times (USER_HZ is 100
	// on x86).
	tick = 0.01
)

// klpCommands are the commands the targets hold klp to.
var klpCommands = []string{CmdKlpBlocking, CmdKlpBlockingJSON, CmdKlpWait, CmdKlpWaitTTY}

func (r *Report) targets() []Target {
	out := []Target{}
	if len(r.Threads) == 0 {
		return out
	}
	first, last := r.Threads[0], r.Threads[len(r.Threads)-1]
	for _, n := range r.Threads {
		if n < ScanFloorFrom {
			continue
		}
		v := r.Ratio(RatioKlpFloor, n)
		if v == nil {
			continue
		}
		t := Target{Name: "scan vs the C floor", Threads: n, Command: CmdKlpBlocking, Value: v}
		if r.Guest.CPUs <= 1 {
			t.Limit, t.Pass = ScanFloorOneCPU, *v <= ScanFloorOneCPU
			t.Detail = fmt.Sprintf("klp blocking takes %.2f times the C scanner's time (target: at most %.1f on one vCPU)", *v, ScanFloorOneCPU)
		} else {
			t.Limit, t.Pass = 1, *v < 1
			t.Detail = fmt.Sprintf("klp blocking takes %.2f times the C scanner's time (target: below 1 on %d vCPUs)", *v, r.Guest.CPUs)
		}
		out = append(out, t)
	}
	// The targets for the wait's CPU are the plain wait's; on a
	// terminal the progress line's count is held to its pace instead.
	if v := r.Ratio(RatioWaitPoll, WaitCPUThreads); v != nil {
		out = append(out, Target{
			Name: "wait CPU vs a 1 s poll", Threads: WaitCPUThreads, Command: CmdKlpWait, Value: v,
			Limit: WaitCPUVsPoll, Pass: *v <= WaitCPUVsPoll,
			Detail: fmt.Sprintf("%s uses %.2f times the CPU of the 1 s bash poll loop per second of waiting (target: at most %.1f)", CmdKlpWait, *v, WaitCPUVsPoll),
		})
	}
	if last > first {
		a, ok1 := r.median(first, CmdKlpWait, cpuOf)
		b, ok2 := r.median(last, CmdKlpWait, cpuOf)
		if ok1 && ok2 {
			// One tick over the window is the resolution of both.
			slack := tick / r.window(CmdKlpWait)
			out = append(out, Target{
				Name: "wait CPU flat in threads", Threads: last, Command: CmdKlpWait, Value: divide(b, a),
				Limit: 1, Pass: b <= a+slack,
				Detail: fmt.Sprintf("%s uses %.2f%% of a CPU at %d threads, %.2f%% at %d (target: no more; resolution %.2f%%)",
					CmdKlpWait, 100*b, last, 100*a, first, 100*slack),
			})
		}
	}
	out = append(out, r.latencyTargets(CmdKlpWait)...)
	out = append(out, r.pacedTargets(CmdKlpWaitTTY)...)
	out = append(out, r.latencyTargets(CmdKlpWaitTTY)...)
	if last > first {
		for _, cmd := range klpCommands {
			if v := r.Ratio(RatioRSS(cmd), last); v != nil {
				out = append(out, Target{
					Name: "memory flat in threads", Threads: last, Command: cmd, Value: v,
					Limit: MemoryFlatLimit, Pass: *v <= MemoryFlatLimit,
					Detail: fmt.Sprintf("%s peaks at %.2f times its memory at %d threads (target: flat, at most %.1f)", cmd, *v, first, MemoryFlatLimit),
				})
			}
		}
	}
	return out
}

// latencyTargets holds a waiter to noticing completion within
// WaitLatencyOne on one vCPU, beside the floor's figure.
func (r *Report) latencyTargets(cmd string) []Target {
	if r.Guest.CPUs > 1 {
		return nil
	}
	var out []Target
	for _, n := range r.Threads {
		m, ok := r.median(n, cmd, latOf)
		if !ok {
			continue
		}
		floor := ""
		if f, ok := r.median(n, CmdKmsgWait, latOf); ok {
			// What the kernel and the emulator take to wake a
			// reader of the log and reap it.
			floor = fmt.Sprintf("; the %s returns after %.1f ms", CmdKmsgWait, 1000*f)
		}
		out = append(out, Target{
			Name: "completion noticed", Threads: n, Command: cmd, Value: &m,
			Limit: WaitLatencyOne, Pass: m <= WaitLatencyOne,
			Detail: fmt.Sprintf("%s returns %.1f ms (median) after the kernel completes the transition (target: within %.0f ms on one vCPU%s)", cmd, 1000*m, 1000*WaitLatencyOne, floor),
		})
	}
	return out
}

// pacedTargets holds a waiter on a terminal to the pace of its progress
// line's count at every thread count: its CPU at most ProgressPace more
// than the plain wait's: on a terminal the line shows the tasks left,
// which costs a count of every task, paced.
func (r *Report) pacedTargets(cmd string) []Target {
	var out []Target
	for _, n := range r.Threads {
		tty, ok1 := r.median(n, cmd, cpuOf)
		plain, ok2 := r.median(n, CmdKlpWait, cpuOf)
		if !ok1 || !ok2 {
			continue
		}
		slack := tick / r.window(cmd)
		v := tty - plain
		out = append(out, Target{
			Name: "progress count within its pace", Threads: n, Command: cmd, Value: &v,
			Limit: ProgressPace, Pass: v <= ProgressPace+slack,
			Detail: fmt.Sprintf("%s uses %.2f%% of a CPU, %.2f%% more than klp wait (target: at most %.0f%% more; resolution %.2f%%)",
				cmd, 100*tty, 100*v, 100*ProgressPace, 100*slack),
		})
	}
	return out
}

// window is the longest CPU measuring window of cmd's samples (the stall
// less the warm-up), in seconds; 10 s when unknown.
func (r *Report) window(cmd string) float64 {
	w := 0.0
	for _, s := range r.Samples {
		if s.Command == cmd && s.Window > w {
			w = s.Window
		}
	}
	if w == 0 {
		return 10
	}
	return w
}
