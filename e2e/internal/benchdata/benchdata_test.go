package benchdata

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func f(v float64) *float64 { return &v }

func TestNewStat(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want *Stat
	}{
		{nil, nil},
		{[]float64{3}, &Stat{Min: 3, Median: 3, Max: 3, N: 1}},
		{[]float64{5, 1, 3}, &Stat{Min: 1, Median: 3, Max: 5, N: 3}},
		{[]float64{4, 1, 2, 10}, &Stat{Min: 1, Median: 3, Max: 10, N: 4}},
	} {
		if diff := cmp.Diff(c.want, NewStat(c.in)); diff != "" {
			t.Errorf("NewStat(%v): unexpected diff (-want +got):\n%s", c.in, diff)
		}
	}
}

func TestFormatParseConsole(t *testing.T) {
	env := GuestEnv{Kernel: "6.1.0-56-cloud-amd64", CPUs: 1, Reps: 2}
	s := Sample{Threads: 1000, Tasks: 1053, Command: CmdKlpWait, Kind: KindWait, Latency: f(0.004), CPUPerSec: f(0.07), MaxRSS: 8000}
	var lines []string
	for _, r := range []struct {
		kind string
		v    any
	}{{"env", env}, {"sample", s}, {"note", "1,000 threads:\nstarted"}} {
		l, err := FormatRecord(r.kind, r.v)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	// A kernel message glued in front, a stray line, then the end.
	lines[1] = "[   12.5] random: crng init done" + lines[1]
	lines = append(lines, "KLPTEST-EXIT 0", "\r"+DoneLine+"\r")
	g, err := ParseConsole(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := &Guest{Env: &env, Samples: []Sample{s}, Notes: []string{"1,000 threads: started"}, Done: true}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}
}

func TestParseConsoleErrors(t *testing.T) {
	for _, in := range []string{"KLPBENCH sample {", "KLPBENCH env [1]"} {
		if _, err := ParseConsole(strings.NewReader(in)); err == nil {
			t.Errorf("ParseConsole(%q): no error", in)
		}
	}
	g, err := ParseConsole(strings.NewReader("KLPBENCH other x\nnothing"))
	if err != nil || g.Done || len(g.Samples)+len(g.Notes) != 0 || g.Env != nil {
		t.Errorf("unknown records: got %+v, %v; want nothing", g, err)
	}
}

func FuzzParseConsole(f *testing.F) {
	f.Add("KLPBENCH sample {\"threads\":1}\nKLPBENCH-DONE\n")
	f.Add("xKLPBENCH note a b\r\nKLPBENCH env {}")
	f.Fuzz(func(t *testing.T, in string) {
		g, err := ParseConsole(strings.NewReader(in))
		if g == nil {
			t.Fatalf("nil guest (error %v)", err)
		}
		if err == nil && !strings.Contains(in, LinePrefix) && (g.Done || len(g.Samples) > 0) {
			t.Fatalf("records from input without %s", LinePrefix)
		}
	})
}

// run builds a guest with scans and waits at two thread counts.
func run(cpus int) *Guest {
	g := &Guest{Env: &GuestEnv{CPUs: cpus, THP: "always [madvise] never"}, Done: true}
	scan := func(n int, cmd string, wall float64, rss int64) {
		g.Samples = append(g.Samples, Sample{Threads: n, Command: cmd, Kind: KindScan, Wall: wall, MaxRSS: rss})
	}
	wait := func(n int, cmd string, lat, cpu float64, rss int64) {
		g.Samples = append(g.Samples, Sample{Threads: n, Command: cmd, Kind: KindWait, Latency: f(lat), CPUPerSec: f(cpu), CPUPerSecTicks: f(cpu + 0.01), Window: 9, MaxRSS: rss, RunsPerSec: f(1000 * cpu)})
	}
	for _, n := range []int{1000, 30000} {
		k := float64(n) / 1000
		scan(n, CmdKlpBlocking, 0.011*k, 8000)
		scan(n, CmdKlpBlocking, 0.013*k, 8200)
		scan(n, CmdKlpBlockingJSON, 0.012*k, 8100)
		scan(n, CmdKlpMetrics, 0.018*k, 8300)
		scan(n, CmdCScan, 0.010*k, 700)
		scan(n, CmdBash, 0.1*k, 2000*int64(k))
		wait(n, CmdKlpWait, 0.004, 0.002, 9000)
		wait(n, CmdKlpWaitTTY, 0.005, 0.01*k, 9000)
		wait(n, CmdPoll, 0.5, 0.05, 2000)
		wait(n, CmdKmsgWait, 0.003, 0.0001, 700)
	}
	scan(1000, CmdKpatch, 30, 2000)
	g.Samples = append(g.Samples, Sample{Threads: 30000, Command: CmdCScan, Kind: KindScan, Wall: 99, Error: "printed nothing"})
	return g
}

func TestReport(t *testing.T) {
	r := NewReport(run(1), HostEnv{VCPUs: 1}, "2026-11-24")
	if diff := cmp.Diff([]int{1000, 30000}, r.Threads); diff != "" {
		t.Errorf("threads: unexpected diff (-want +got):\n%s", diff)
	}
	fig := r.Figure(30000, CmdCScan)
	if fig == nil || fig.Wall.N != 1 || fig.Wall.Median != 0.3 || len(fig.Errors) != 1 {
		t.Errorf("C scanner at 30,000: %+v, want one good sample of 0.3 s and one error", fig)
	}
	if fig := r.Figure(30000, CmdKpatch); fig != nil {
		t.Errorf("kpatch at 30,000: %+v, want no figure", fig)
	}
	ratio := func(name string, n int) float64 {
		t.Helper()
		v := r.Ratio(name, n)
		if v == nil {
			t.Fatalf("ratio %q at %d missing", name, n)
		}
		return *v
	}
	for _, c := range []struct {
		name string
		n    int
		want float64
	}{
		{RatioKlpFloor, 30000, 1.2},
		{RatioKlpJSONFloor, 1000, 1.2},
		{RatioBashKlp, 1000, 0.1 / 0.012},
		{RatioKpatchKlp, 1000, 30 / 0.012},
		{RatioMetricsKlp, 30000, 1.5},
		{RatioWaitPoll, 30000, 0.04},
		{RatioWaitTTYPoll, 30000, 6},
		{RatioWaitGrowth, 30000, 1},
		{RatioWaitTTYGrow, 30000, 30},
		{RatioRSS(CmdBash), 30000, 30},
	} {
		if got := ratio(c.name, c.n); !close(got, c.want) {
			t.Errorf("%s at %d = %v, want %v", c.name, c.n, got, c.want)
		}
	}
	if r.Ratio(RatioKpatchKlp, 30000) != nil {
		t.Error("a ratio without its figures")
	}
	verdicts := map[string]bool{}
	for _, tg := range r.Targets {
		verdicts[fmt.Sprintf("%s/%s/%d", tg.Name, tg.Command, tg.Threads)] = tg.Pass
	}
	want := map[string]bool{
		"scan vs the C floor/klp blocking/30000":       true, // 1.2 at 30,000
		"wait CPU vs a 1 s poll/klp wait/30000":        true,
		"wait CPU flat in threads/klp wait/30000":      true,
		"completion noticed/klp wait/1000":             true,
		"completion noticed/klp wait/30000":            true,
		"completion noticed/klp wait (terminal)/1000":  true,
		"completion noticed/klp wait (terminal)/30000": true,
		// On a terminal: 1 % and 30 % of a CPU against the plain
		// wait's 0.2 %, held to the count's pace of 2 %.
		"progress count within its pace/klp wait (terminal)/1000":  true,
		"progress count within its pace/klp wait (terminal)/30000": false,
		"memory flat in threads/klp blocking/30000":                true,
		"memory flat in threads/klp blocking --json/30000":         true,
		"memory flat in threads/klp wait/30000":                    true,
		"memory flat in threads/klp wait (terminal)/30000":         true,
	}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("targets: unexpected diff (-want +got):\n%s", diff)
	}
	md := r.Markdown()
	for _, s := range []string{"| klp blocking | 12.0 ms (11.0 ms–13.0 ms) | 360 ms (330 ms–390 ms) |", "MISSED, 30,000 threads: progress count within its pace", "left out: C scanner, 30,000 threads: printed nothing", "| kpatch (fork per task) | 30.0 s | – |",
		"| klp wait: the same in clock ticks (/proc/<pid>/stat) | 1.20 % | 1.20 % |",
		"| klp metrics / klp blocking | 1.50 | 1.50 |",
		"| klp wait (terminal): times put on a CPU (schedstat) | 10.0/s | 300/s |",
		"| C log reader (floor): returns after completion | 3.00 ms | 3.00 ms |",
		"; transparent huge pages: always [madvise] never.",
		"returns 4.0 ms (median) after the kernel completes the transition (target: within 10 ms on one vCPU; the C log reader (floor) returns after 3.0 ms)"} {
		if !strings.Contains(md, s) {
			t.Errorf("Markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestTargetsTwoCPUs(t *testing.T) {
	r := NewReport(run(2), HostEnv{VCPUs: 2}, "2026-11-24")
	for _, tg := range r.Targets {
		switch tg.Name {
		case "scan vs the C floor":
			if tg.Pass || tg.Limit != 1 {
				t.Errorf("1.2 times the floor on 2 vCPUs: %+v, want missed against 1", tg)
			}
		case "completion noticed":
			t.Errorf("latency target on 2 vCPUs: %+v", tg)
		}
	}
	s := Summary([]*Report{NewReport(run(1), HostEnv{VCPUs: 1}, ""), r})
	for _, want := range []string{"|  | 1 vCPU | 2 vCPUs |", "| klp blocking / C scanner, 30,000 threads | 1.20 | 1.20 |", "| kpatch (fork per task) / klp blocking, 1,000 threads | 2500.00 | 2500.00 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
	if Summary(nil) != "" {
		t.Error("Summary of nothing is not empty")
	}
}

func TestMarkdownWithoutTicks(t *testing.T) {
	// Results from before the cgroup measure have the tick figure alone,
	// as CPUPerSec: no row of ticks.
	g := run(1)
	for i := range g.Samples {
		g.Samples[i].CPUPerSecTicks = nil
	}
	r := NewReport(g, HostEnv{VCPUs: 1}, "")
	if md := r.Markdown(); strings.Contains(md, "clock ticks") || !strings.Contains(md, "klp wait: CPU per second of waiting | 0.200 %") {
		t.Errorf("Markdown of tick-only results:\n%s", md)
	}
}

func TestEmptyReport(t *testing.T) {
	r := NewReport(&Guest{}, HostEnv{}, "")
	if len(r.Ratios)+len(r.Targets)+len(r.Figures) != 0 || r.Samples == nil || r.Notes == nil {
		t.Errorf("empty report: %+v", r)
	}
}

func close(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Thousands(0), "0"},
		{Thousands(999), "999"},
		{Thousands(30000), "30,000"},
		{Thousands(-1234567), "-1,234,567"},
		{Seconds(0), "0"},
		{Seconds(0.0000412), "41.2 µs"},
		{Seconds(0.00412), "4.12 ms"},
		{Seconds(0.412), "412 ms"},
		{Seconds(41.2), "41.2 s"},
		{Percent(0.0712), "7.12 %"},
		{MiB(8 * 1024), "8.00 MiB"},
		{RatioText(nil), "–"},
		{RatioText(f(0.0712)), "0.071"},
		{RatioText(f(1.234)), "1.23"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
