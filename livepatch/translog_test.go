package livepatch

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// As Debian's 6.1 printed them with dynamic debug on (docs/kernel-notes.md).
const transitionLog = `klp_e2e_cmdline: tainting kernel with TAINT_LIVEPATCH
livepatch: enabling patch 'klp_e2e_cmdline'
livepatch: 'klp_e2e_cmdline': starting patching transition
livepatch: klp_try_switch_task: klp_e2e_busy:97 has an unreliable stack
livepatch: klp_try_switch_task: cat:212 is sleeping on function klp_e2e_target_read
livepatch: klp_try_switch_task: kworker/0:1 ev:15 is running
livepatch: klp_try_switch_task: cat:212 is sleeping on function cmdline_proc_show
livepatch: signaling remaining tasks
`

func TestParseTransitionLog(t *testing.T) {
	got, err := ParseTransitionLog(strings.NewReader(transitionLog), "klp_e2e_cmdline")
	if err != nil {
		t.Fatal(err)
	}
	want := TransitionLog{Started: true, Signalled: true, Reasons: map[int]SwitchReason{
		97: {Reason: ReasonUnreliableStack, Comm: "klp_e2e_busy", PID: 97,
			Message: "livepatch: klp_try_switch_task: klp_e2e_busy:97 has an unreliable stack"},
		212: {Reason: ReasonSleepingOnFunction, Comm: "cat", PID: 212, Function: "cmdline_proc_show",
			Message: "livepatch: klp_try_switch_task: cat:212 is sleeping on function cmdline_proc_show"},
		15: {Reason: ReasonRunning, Comm: "kworker/0:1 ev", PID: 15,
			Message: "livepatch: klp_try_switch_task: kworker/0:1 ev:15 is running"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unexpected log (-want +got):\n%s", diff)
	}
}

func TestParseTransitionLogRestarts(t *testing.T) {
	log := transitionLog +
		"livepatch: 'klp_e2e_cmdline': reversing transition from patching to unpatching\n" +
		"livepatch: 'klp_e2e_cmdline': starting unpatching transition\n" +
		"livepatch: klp_check_stack: old:7 has an unreliable stack\n" + // before 5.16
		"livepatch: 'other': starting patching transition\n"
	got, err := ParseTransitionLog(strings.NewReader(log), "klp_e2e_cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started || got.Signalled || len(got.Reasons) != 1 || got.Reasons[7].Reason != ReasonUnreliableStack {
		t.Errorf("after a reverse only the new transition counts: %+v", got)
	}
	none, err := ParseTransitionLog(strings.NewReader("livepatch: signaling remaining tasks\n"), "p")
	if err != nil || none.Started || !none.Signalled {
		t.Errorf("a log whose start was overwritten is read whole: %+v %v", none, err)
	}
}

// A thread may set an empty name (prctl PR_SET_NAME): its id still parses.
func TestParseSwitchReasonEmptyComm(t *testing.T) {
	sr, ok := parseSwitchReason("klp_try_switch_task: :5 is running")
	if want := (SwitchReason{Reason: ReasonRunning, PID: 5}); !ok || sr != want {
		t.Errorf("parseSwitchReason = %+v, %v; want %+v", sr, ok, want)
	}
}

func TestParseSwitchReasonRejects(t *testing.T) {
	for _, msg := range []string{
		"klp_try_switch_task: nopid has an unreliable stack",
		"klp_try_switch_task: a:0 is running",
		"klp_try_switch_task: a:-3 is running",
		"klp_try_switch_task: a:07 is running",
		"klp_try_switch_task: a:5 is sleeping on function ",
		"klp_try_switch_task: a:5 is sleeping on function two words",
		"klp_try_switch_task: Unknown error code (-22) when trying to switch a:5",
		"other: a:5 is running",
	} {
		if sr, ok := parseSwitchReason(msg); ok {
			t.Errorf("%q parsed as %+v", msg, sr)
		}
	}
}

func TestParseDynamicDebug(t *testing.T) {
	// Debian 6.12's control file, livepatch's sites.
	const off = `kernel/livepatch/transition.c:97 [livepatch]klp_complete_transition =_ "'%s': completing %s transition\012"
kernel/livepatch/transition.c:345 [livepatch]klp_try_switch_task =_ "%s: %s:%d is running\012"
kernel/livepatch/transition.c:349 [livepatch]klp_try_switch_task =_ "%s: %s:%d has an unreliable stack\012"
kernel/livepatch/transition.c:353 [livepatch]klp_try_switch_task =_ "%s: %s:%d is sleeping on function %s\012"
fs/ext4/super.c:100 [ext4]ext4_fill_super =p "x"
`
	on := strings.ReplaceAll(off, "klp_try_switch_task =_", "klp_try_switch_task =p")
	for _, tc := range []struct {
		name, file     string
		found, enabled bool
	}{
		{"off", off, true, false},
		{"on", on, true, true},
		{"partly on", strings.Replace(off, "klp_try_switch_task =_", "klp_try_switch_task =pmf", 1), true, false},
		{"before 5.16", "kernel/livepatch/transition.c:290 [livepatch]klp_check_stack =p \"%s\"\n", true, true},
		{"no format", "kernel/livepatch/transition.c:290 [livepatch]klp_check_stack =p\n", true, true},
		{"no dynamic debug for livepatch", "fs/ext4/super.c:100 [ext4]ext4_fill_super =p \"x\"\n", false, false},
	} {
		found, enabled, err := ParseDynamicDebug(strings.NewReader(tc.file))
		if err != nil || found != tc.found || enabled != tc.enabled {
			t.Errorf("%s: found %v enabled %v err %v, want %v %v", tc.name, found, enabled, err, tc.found, tc.enabled)
		}
	}
}
