package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigFrom(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := configFrom(env(nil))
	if err != nil || len(c.threads) != 4 || c.reps != 5 || c.waitReps != 3 || c.stall != 10*time.Second || c.kpatchMax != 1000 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = configFrom(env(map[string]string{
		"klp_bench_threads": "10,1000", "klp_bench_reps": "1", "klp_bench_wait_reps": "2",
		"klp_bench_stall": "2s", "klp_bench_kpatch_max": "10",
	}))
	want := config{threads: []int{10, 1000}, reps: 1, waitReps: 2, stall: 2 * time.Second, kpatchMax: 10}
	if err != nil || !cmp.Equal(want, c, cmp.AllowUnexported(config{})) {
		t.Errorf("set: got %+v, %v; want %+v", c, err, want)
	}
	c, err = configFrom(env(map[string]string{"klp_bench_only": "waits,metrics"}))
	if err != nil || !c.runs("waits") || !c.runs("metrics") || c.runs("scans") {
		t.Errorf("only waits,metrics: %+v, %v", c, err)
	}
	if c, _ := configFrom(env(nil)); !c.runs("scans") || !c.runs("waits") || c.runs("metrics") || c.trace {
		t.Errorf("default: %+v runs the wrong measures", c)
	}
	for v, want := range map[string]bool{"1": true, "0": false} {
		if c, err := configFrom(env(map[string]string{"klp_bench_trace": v})); err != nil || c.trace != want {
			t.Errorf("klp_bench_trace=%s: trace %v, %v; want %v", v, c.trace, err, want)
		}
	}
	for _, bad := range []map[string]string{
		{"klp_bench_only": "scan"},
		{"klp_bench_only": "waits,"},
		{"klp_bench_threads": "10,x"},
		{"klp_bench_threads": "-1"},
		{"klp_bench_reps": "many"},
		{"klp_bench_stall": "1s"},
		{"klp_bench_stall": "soon"},
		{"klp_bench_trace": "yes"},
	} {
		if _, err := configFrom(env(bad)); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestTraceUsec(t *testing.T) {
	for line, want := range map[string]int64{
		"             klp-95      [000] d..2.   123.456789: sched_switch: prev_comm=klp prev_pid=95": 123456789,
		"          <idle>-0       [000] dNh2.     7.000001: sched_wakeup: comm=klp pid=95 prio=120":  7000001,
	} {
		if got, ok := traceUsec(line); !ok || got != want {
			t.Errorf("traceUsec(%q) = %d, %v; want %d", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "# tracer: nop", "#           TASK-PID", " klp-95 [000] d..2. 123.4567: x: y", " klp-95 [000] d..2. 12x.456789: x: y", " klp-95 [000] d..2. 123: x: y"} {
		if got, ok := traceUsec(bad); ok {
			t.Errorf("traceUsec(%q) = %d, true; want false", bad, got)
		}
	}
}

func TestParseStatTicks(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ...
	line := "42 (klp wait (x)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 20 10 20 0 1 0 100 1000 200\n"
	got, err := parseStatTicks(strings.NewReader(line))
	if err != nil || got != 40 {
		t.Errorf("parseStatTicks = %d, %v; want 40", got, err)
	}
	for _, bad := range []string{"", "42 klp S 1", "42 (k) S 1 2 3", "42 (k) S 1 42 42 0 -1 0 0 0 0 0 x 3 0 0 20"} {
		if _, err := parseStatTicks(strings.NewReader(bad)); err == nil {
			t.Errorf("parseStatTicks(%q): no error", bad)
		}
	}
}

func TestParseSchedstatRuns(t *testing.T) {
	got, err := parseSchedstatRuns("1207532 88113 37\n")
	if err != nil || got != 37 {
		t.Errorf("parseSchedstatRuns = %d, %v; want 37", got, err)
	}
	for _, bad := range []string{"", "1 2", "1 2 x", "1 2 3 4"} {
		if _, err := parseSchedstatRuns(bad); err == nil {
			t.Errorf("parseSchedstatRuns(%q): no error", bad)
		}
	}
}

func TestParseCPUStatUsage(t *testing.T) {
	in := "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n"
	got, err := parseCPUStatUsage(strings.NewReader(in))
	if err != nil || got != 1234567*time.Microsecond {
		t.Errorf("parseCPUStatUsage = %v, %v; want 1.234567s", got, err)
	}
	for _, bad := range []string{"", "user_usec 5\n", "usage_usec x\n", "usage_usec -1\n"} {
		if _, err := parseCPUStatUsage(strings.NewReader(bad)); err == nil {
			t.Errorf("parseCPUStatUsage(%q): no error", bad)
		}
	}
}

func FuzzParseCPUStatUsage(f *testing.F) {
	f.Add("usage_usec 10\nuser_usec 5\n")
	f.Add("usage_usec 99999999999999999999\n")
	f.Fuzz(func(t *testing.T, in string) {
		if v, err := parseCPUStatUsage(strings.NewReader(in)); err == nil && v < 0 {
			t.Fatalf("negative usage %v", v)
		}
	})
}

func FuzzParseStatTicks(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 100 0 0 0 7 3 20 10 20 0 1 0 100 1000 200")
	f.Add("1 ()) S 0 1 1 0 -1 0 0 0 0 0 -7 3 20 10")
	f.Fuzz(func(t *testing.T, in string) {
		if v, err := parseStatTicks(strings.NewReader(in)); err == nil && v < 0 {
			t.Fatalf("negative ticks %d", v)
		}
	})
}

func TestParseKmsgRecord(t *testing.T) {
	rec := "5,1234,56789012,-;livepatch: 'klp_e2e_target_patch': patching complete\n SUBSYSTEM=x\n"
	got, err := parseKmsgRecord(strings.NewReader(rec))
	want := kmsgRecord{Seq: 1234, Usec: 56789012, Msg: "livepatch: 'klp_e2e_target_patch': patching complete"}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if !strings.Contains(got.Msg, completionMsg) {
		t.Errorf("%q does not hold %q", got.Msg, completionMsg)
	}
	// A caller field (CONFIG_PRINTK_CALLER) after the flags.
	if got, err := parseKmsgRecord(strings.NewReader("7,1,2,c,caller=T1;x")); err != nil || got.Msg != "x" {
		t.Errorf("with caller: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "no semicolon", "5,1,2;short", "5,x,2,-;m", "5,1,-2,-;m"} {
		if _, err := parseKmsgRecord(strings.NewReader(bad)); err == nil {
			t.Errorf("parseKmsgRecord(%q): no error", bad)
		}
	}
}

func FuzzParseKmsgRecord(f *testing.F) {
	f.Add("5,1234,56789012,-;livepatch: done\n")
	f.Add("7,1,2,c,caller=T1;x\n K=v")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := parseKmsgRecord(strings.NewReader(in))
		if err == nil && (r.Usec < 0 || strings.Contains(r.Msg, "\n")) {
			t.Fatalf("bad record %+v", r)
		}
	})
}

func TestParseReport(t *testing.T) {
	var res result
	if exited, err := parseReport("pid 77", &res); err != nil || exited || res.pid != 77 {
		t.Fatalf("pid line: %+v, %v, %v", res, exited, err)
	}
	exited, err := parseReport("exit 256 start 1000 end 5000 utime 1500 stime 500 maxrss 612", &res)
	if err != nil || !exited {
		t.Fatalf("exit line: %v, %v", exited, err)
	}
	if res.wall() != 4000*time.Nanosecond || res.cpu != 2*time.Millisecond || res.maxRSS != 612 || res.status.ExitStatus() != 1 {
		t.Errorf("exit line: %+v", res)
	}
	if describeStatus(res.status) != "exit status 1" || describeStatus(syscall.WaitStatus(9)) != "killed by killed" {
		t.Errorf("describeStatus: %q, %q", describeStatus(res.status), describeStatus(syscall.WaitStatus(9)))
	}
	for _, bad := range []string{"hello", "pid x", "exit 0 start 1"} {
		if _, err := parseReport(bad, &res); err == nil {
			t.Errorf("parseReport(%q): no error", bad)
		}
	}
}
