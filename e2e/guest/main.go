// Command klp-guest runs klp's end-to-end scenarios inside a QEMU guest
// booted with a real kernel. The initramfs's init script (init.sh) starts it
// as root once proc, sys and dev are mounted.
//
// Every check prints one console line,
//
//	KLPTEST <kernel> <scenario>/<check> PASS|FAIL <detail>
//
// which the host driver (e2e/e2e_test.go) turns into a subtest. Each scenario
// starts with "KLPTEST-SCENARIO <kernel> <scenario>", and after a failing one
// the guest prints the scenario's kernel log as "KLPLOG <line>". Measured
// facts worth recording (timings, errno texts) are printed as
// "KLPNOTE <kernel> <scenario>/<key> <value>". The last line is
// "KLPTEST-DONE <kernel> <passed> <failed>"; without it the guest crashed or
// hung.
//
// klp is the oracle's subject, never its source: the expected values are
// read directly from /sys and /proc by this program, at the moment klp runs.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// scenario is one independent story. Each starts from, and must leave, a
// system with no livepatch and no e2e module loaded.
type scenario struct {
	name string
	run  func(r *runner)
}

func scenarios() []scenario {
	ss := []scenario{
		{"idle", scenarioIdle},
		{"sysfs-abi", scenarioSysfsABI},
		{"plain", scenarioPlain},
		{"broken", scenarioBroken},
		{"apply", scenarioApply},
		{"replace", scenarioReplace},
		{"replace-nops", scenarioReplaceNops},
		{"unloaded-target", scenarioUnloadedTarget},
		{"blocked", scenarioBlocked},
		{"unpatch-blocked", scenarioUnpatchBlocked},
		{"poke", scenarioPoke},
		{"fake-signal", scenarioFakeSignal},
		{"force", scenarioForce},
		{"sysfs-removal", scenarioSysfsRemoval},
		{"klp-load", scenarioKlpLoad},
		{"klp-broken", scenarioKlpBroken},
		{"klp-compressed", scenarioKlpCompressed},
		{"klp-stall", scenarioKlpStall},
		{"klp-reverse", scenarioKlpReverse},
		{"klp-force", scenarioKlpForce},
		{"klp-user", scenarioKlpUser},
		{"klp-store", scenarioKlpStore},
		{"klp-audit", scenarioKlpAudit},
		{"klp-info", scenarioKlpInfo},
		{"klp-preflight", scenarioKlpPreflight},
		{"klp-names", scenarioKlpNames},
		{"klp-race", scenarioKlpRace},
		{"klp-build", scenarioKlpBuild},
		{"klp-snapshot", scenarioKlpSnapshot},
		{"klp-stall-bpf", scenarioKlpStallBPF},
		{"klp-stall-invain", scenarioKlpStallInVain},
		{"klp-override", scenarioKlpOverride},
		{"klp-owner", scenarioKlpOwner},
		{"klp-suse", scenarioKlpSUSE},
		{"klp-wait", scenarioKlpWait},
	}
	ss = append(ss, twinScenarios()...)
	// Last: it leaves a module loaded for good (see the scenario).
	return append(ss, scenario{"klp-force-unpatch", scenarioKlpForceUnpatch})
}

// runner reports checks and keeps per-scenario state.
type runner struct {
	kernel   string
	scenario string
	passed   int
	failed   int
	scenFail bool
	kmsgSeq  uint64   // last kernel log sequence number before the scenario
	children []*child // processes to kill at the end of the scenario
	undo     []func() // run first by cleanup, last added first (unmounts)
	// pinned are modules that the kernel will never let go (a forced
	// unpatching transition): cleanup leaves them loaded.
	pinned map[string]bool
}

// atCleanup registers fn to run at the start of the scenario's cleanup.
func (r *runner) atCleanup(fn func()) { r.undo = append(r.undo, fn) }

func main() {
	if len(os.Args) == 3 && os.Args[1] == "probe-read" {
		probeRead(os.Args[2])
		return
	}
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	r := &runner{kernel: cstr(uts.Release[:]), pinned: map[string]bool{}}
	only := map[string]bool{}
	// klp_e2e_run=a,b on the kernel command line (an environment variable of
	// init) selects scenarios, to iterate quickly on one of them.
	for _, s := range strings.Split(os.Getenv("klp_e2e_run"), ",") {
		if s != "" {
			only[s] = true
		}
	}
	for _, s := range scenarios() {
		if len(only) > 0 && !only[s.name] {
			continue
		}
		r.runScenario(s)
	}
	fmt.Printf("KLPTEST-DONE %s %d %d\n", r.kernel, r.passed, r.failed)
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func (r *runner) runScenario(s scenario) {
	r.scenario = s.name
	r.scenFail = false
	r.kmsgSeq = kmsgLastSeq()
	fmt.Printf("KLPTEST-SCENARIO %s %s\n", r.kernel, s.name)
	start := time.Now()
	func() {
		defer func() {
			if e := recover(); e != nil && e != errAbort {
				r.fail("panic", "%v\n%s", e, debug.Stack())
			}
		}()
		s.run(r)
	}()
	r.reportDocuments()
	r.cleanup()
	r.note("duration", "%.1fs", time.Since(start).Seconds())
	if r.scenFail {
		for _, l := range kmsgSince(r.kmsgSeq) {
			fmt.Printf("KLPLOG %s\n", l)
		}
	}
}

// oneLine keeps a detail on one console line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", `\r`)
	return strings.ReplaceAll(s, "\n", `\n`)
}

func (r *runner) pass(check, format string, args ...any) {
	r.passed++
	fmt.Printf("KLPTEST %s %s/%s PASS %s\n", r.kernel, r.scenario, check, oneLine(fmt.Sprintf(format, args...)))
}

func (r *runner) fail(check, format string, args ...any) {
	r.failed++
	r.scenFail = true
	fmt.Printf("KLPTEST %s %s/%s FAIL %s\n", r.kernel, r.scenario, check, oneLine(fmt.Sprintf(format, args...)))
}

// expect reports check as passed when ok, with the same detail either way.
func (r *runner) expect(check string, ok bool, format string, args ...any) bool {
	if ok {
		r.pass(check, format, args...)
	} else {
		r.fail(check, format, args...)
	}
	return ok
}

// expectNoErr fails check when err is not nil and passes it otherwise.
func (r *runner) expectNoErr(check string, err error, format string, args ...any) bool {
	if err != nil {
		r.fail(check, "%s: %v", fmt.Sprintf(format, args...), err)
		return false
	}
	r.pass(check, format, args...)
	return true
}

func (r *runner) note(key, format string, args ...any) {
	fmt.Printf("KLPNOTE %s %s/%s %s\n", r.kernel, r.scenario, key, oneLine(fmt.Sprintf(format, args...)))
}

// must stops the scenario (through the recover in runScenario) when a step
// that the rest depends on failed; the failure is already reported.
func (r *runner) must(ok bool) {
	if !ok {
		panic(errAbort)
	}
}

var errAbort = abortError{}

type abortError struct{}

func (abortError) Error() string { return "scenario aborted after a failed step" }
