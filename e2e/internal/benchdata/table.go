package benchdata

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Thousands writes n with comma separators: 30000 is "30,000".
func Thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + Thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Seconds writes a duration given in seconds with three significant
// digits: "412 µs", "4.12 ms", "41.2 s".
func Seconds(s float64) string {
	a := math.Abs(s)
	switch {
	case a == 0:
		return "0"
	case a < 1e-3:
		return sig(s*1e6) + " µs"
	case a < 1:
		return sig(s*1e3) + " ms"
	}
	return sig(s) + " s"
}

// Percent writes a fraction of a CPU as a percentage.
func Percent(f float64) string { return sig(100*f) + " %" }

// PerSecond writes a rate.
func PerSecond(v float64) string { return sig(v) + "/s" }

// MiB writes a size given in KiB in MiB.
func MiB(kib float64) string { return sig(kib/1024) + " MiB" }

// sig formats v with three significant digits (no exponent).
func sig(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// RatioText writes a ratio with two decimals (three below 0.1).
func RatioText(v *float64) string {
	if v == nil {
		return "–"
	}
	if math.Abs(*v) < 0.1 {
		return strconv.FormatFloat(*v, 'f', 3, 64)
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}

// statText writes a statistic as "median (min–max)", or the median
// alone for one value.
func statText(s *Stat, format func(float64) string) string {
	if s == nil {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return format(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", format(s.Median), format(s.Min), format(s.Max))
}

type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	line(t.head)
	sep := make([]string, len(t.head))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}

func (r *Report) threadHead(first string) []string {
	h := []string{first}
	for _, n := range r.Threads {
		h = append(h, Thousands(n)+" threads")
	}
	return h
}

// Markdown renders the report: scans, waits, memory, ratios and targets.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %d vCPU%s: %s, %s, %s guest memory (%s)\n\n", r.Host.VCPUs, plural(r.Host.VCPUs), r.Guest.Kernel, r.Host.Accel, r.Host.Memory, r.Date)
	fmt.Fprintf(&b, "Host: %s, %d CPUs, QEMU %s; load average before %s, after %s", r.Host.CPUModel, r.Host.CPUs, r.Host.QEMU, r.Host.LoadBefore, r.Host.LoadAfter)
	if s := NewStat(r.Host.LoadSamples); s != nil {
		fmt.Fprintf(&b, ", 1-minute load %.2f–%.2f during the run", s.Min, s.Max)
	}
	fmt.Fprintf(&b, "; other QEMU guests running: up to %d. %d runs per scan, %d per wait (%s stall)", r.Host.OtherQEMU, r.Guest.Reps, r.Guest.WaitReps, Seconds(r.Guest.Stall))
	if r.Guest.THP != "" {
		fmt.Fprintf(&b, "; transparent huge pages: %s", r.Guest.THP)
	}
	b.WriteString(".\n\n")

	b.WriteString("Scan of every task (wall time, median (min–max)):\n\n")
	t := table{head: r.threadHead("command")}
	for _, cmd := range ScanCommands {
		t.add(r.row(cmd, cmd, func(f *Figure) string { return statText(f.Wall, Seconds) })...)
	}
	b.WriteString(t.String() + "\n")

	b.WriteString("Waiting on a stalled transition:\n\n")
	t = table{head: r.threadHead("")}
	for _, cmd := range WaitCommands {
		t.add(r.row(cmd+": returns after completion", cmd, func(f *Figure) string { return statText(f.Latency, Seconds) })...)
	}
	for _, cmd := range WaitCommands {
		t.add(r.row(cmd+": CPU per second of waiting", cmd, func(f *Figure) string { return statText(f.CPUPerSec, Percent) })...)
	}
	if r.hasFigure(func(f *Figure) *Stat { return f.CPUPerSecTicks }) {
		for _, cmd := range WaitCommands {
			t.add(r.row(cmd+": the same in clock ticks (/proc/<pid>/stat)", cmd, func(f *Figure) string { return statText(f.CPUPerSecTicks, Percent) })...)
		}
	}
	if r.hasFigure(func(f *Figure) *Stat { return f.RunsPerSec }) {
		for _, cmd := range WaitCommands {
			t.add(r.row(cmd+": times put on a CPU (schedstat)", cmd, func(f *Figure) string { return statText(f.RunsPerSec, PerSecond) })...)
		}
	}
	b.WriteString(t.String() + "\n")

	b.WriteString("Peak memory (max RSS, median):\n\n")
	t = table{head: r.threadHead("command")}
	for _, cmd := range append(slices.Clone(ScanCommands), WaitCommands...) {
		t.add(r.row(cmd, cmd, func(f *Figure) string {
			if f.MaxRSS == nil {
				return "–"
			}
			return MiB(f.MaxRSS.Median)
		})...)
	}
	b.WriteString(t.String() + "\n")

	b.WriteString("Ratios (of medians):\n\n")
	t = table{head: r.threadHead("ratio")}
	for _, name := range []string{RatioKlpFloor, RatioKlpJSONFloor, RatioMetricsKlp, RatioBashKlp, RatioKpatchKlp, RatioWaitPoll, RatioWaitTTYPoll, RatioWaitGrowth, RatioWaitTTYGrow} {
		cells := []string{name}
		for _, n := range r.Threads {
			cells = append(cells, RatioText(r.Ratio(name, n)))
		}
		t.add(cells...)
	}
	b.WriteString(t.String() + "\n")

	if len(r.Targets) > 0 {
		b.WriteString("Targets:\n\n")
		for _, tg := range r.Targets {
			verdict := "met"
			if !tg.Pass {
				verdict = "MISSED"
			}
			fmt.Fprintf(&b, "- %s, %s threads: %s. %s\n", verdict, Thousands(tg.Threads), tg.Name, tg.Detail)
		}
		b.WriteString("\n")
	}
	var errs []string
	for _, f := range r.Figures {
		for _, e := range f.Errors {
			errs = append(errs, fmt.Sprintf("%s, %s threads: %s", f.Command, Thousands(f.Threads), e))
		}
	}
	if len(errs)+len(r.Notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
		for _, e := range errs {
			b.WriteString("- left out: " + e + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// hasFigure reports whether any figure has the statistic get returns
// (results from before a statistic was measured lack it).
func (r *Report) hasFigure(get func(*Figure) *Stat) bool {
	for i := range r.Figures {
		if get(&r.Figures[i]) != nil {
			return true
		}
	}
	return false
}

// row renders one table row: the label, then cell(figure of cmd) per
// thread count; a missing figure is "–".
func (r *Report) row(label, cmd string, cell func(*Figure) string) []string {
	cells := []string{label}
	for _, n := range r.Threads {
		if f := r.Figure(n, cmd); f != nil {
			cells = append(cells, cell(f))
		} else {
			cells = append(cells, "–")
		}
	}
	return cells
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Summary renders the runs side by side, one column per report (one per
// vCPU count): the ratios the targets are stated in, the waits' latency
// and CPU, and every target's verdict.
func Summary(reports []*Report) string {
	if len(reports) == 0 {
		return ""
	}
	head := []string{""}
	for _, r := range reports {
		head = append(head, fmt.Sprintf("%d vCPU%s", r.Host.VCPUs, plural(r.Host.VCPUs)))
	}
	t := table{head: head}
	var threads []int
	for _, r := range reports {
		for _, n := range r.Threads {
			if !slices.Contains(threads, n) {
				threads = append(threads, n)
			}
		}
	}
	slices.Sort(threads)
	each := func(label string, cell func(r *Report, n int) string) {
		for _, n := range threads {
			cells := []string{fmt.Sprintf("%s, %s threads", label, Thousands(n))}
			any := false
			for _, r := range reports {
				c := cell(r, n)
				any = any || c != "–"
				cells = append(cells, c)
			}
			if any {
				t.add(cells...)
			}
		}
	}
	for _, name := range []string{RatioKlpFloor, RatioKlpJSONFloor, RatioMetricsKlp, RatioBashKlp, RatioKpatchKlp} {
		each(name, func(r *Report, n int) string { return RatioText(r.Ratio(name, n)) })
	}
	for _, cmd := range WaitCommands {
		each("`"+cmd+"` returns after completion (median, min–max)", func(r *Report, n int) string {
			if f := r.Figure(n, cmd); f != nil {
				return statText(f.Latency, Seconds)
			}
			return "–"
		})
	}
	for _, cmd := range WaitCommands {
		each("CPU per second of waiting, `"+cmd+"`", func(r *Report, n int) string {
			if f := r.Figure(n, cmd); f != nil {
				return statText(f.CPUPerSec, Percent)
			}
			return "–"
		})
	}
	for _, name := range []string{RatioWaitPoll, RatioWaitTTYPoll} {
		each(name, func(r *Report, n int) string { return RatioText(r.Ratio(name, n)) })
	}
	for _, cmd := range klpCommands {
		each("peak memory, `"+cmd+"`", func(r *Report, n int) string {
			if f := r.Figure(n, cmd); f != nil && f.MaxRSS != nil {
				return MiB(f.MaxRSS.Median)
			}
			return "–"
		})
	}
	return t.String()
}
