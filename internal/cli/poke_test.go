package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/kernel"
)

// helperEnv makes the test binary a helper process instead of running
// tests; see init.
const helperEnv = "KLP_CLI_TEST_HELPER"

func init() {
	// The helper runs from init, before the testing package: a TestMain
	// would clash with the internal tests of package cli.
	if os.Getenv(helperEnv) == "sigcont" {
		sigcontHelper()
		os.Exit(0)
	}
}

// sigcontHelper is a process for kgr poke to signal: it writes "ready" on
// file descriptor 3, then "cont" for every SIGCONT it gets, and otherwise
// sleeps until it is killed.
func sigcontHelper() {
	report := os.NewFile(3, "report")
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGCONT)
	fmt.Fprintln(report, "ready")
	for range ch {
		fmt.Fprintln(report, "cont")
	}
}

// helper is a running sigcontHelper.
type helper struct {
	pid   int
	conts chan struct{}
}

// startHelper starts a helper process, in a process group of its own when
// ownGroup is set (otherwise in the test's), and waits until it is ready.
func startHelper(t *testing.T, ownGroup bool) *helper {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=sigcont")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: ownGroup}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // also kills a stopped process
		_ = cmd.Wait()
		r.Close()
	})
	h := &helper{pid: cmd.Process.Pid, conts: make(chan struct{}, 16)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			switch sc.Text() {
			case "ready":
				close(ready)
			case "cont":
				h.conts <- struct{}{}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("helper %d did not start: %s", h.pid, out.String())
	}
	return h
}

// procState returns the state letter of /proc/<pid>/stat.
func procState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return "", fmt.Errorf("bad stat %q", s)
	}
	return s[i+2 : i+3], nil
}

// setState replaces the state letter of a stat line.
func setState(stat []byte, state string) []byte {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return []byte(s[:i+2] + state + s[i+3:])
}

// pokeTree is a fake tree in which real processes (copies of their /proc
// files) and made-up ones block a transition.
type pokeTree struct {
	t    *testing.T
	root string
	// real are the copied processes: pid -> state letter to show ("" for
	// the real one).
	real map[int]string
	comm map[int]string
}

func newPokeTree(t *testing.T) *pokeTree {
	t.Helper()
	root := t.TempDir()
	a := txtar.Parse([]byte(`-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
1
-- proc/1/task/1/stat --
1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 4096 1256 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/1/task/1/comm --
systemd
-- proc/1/task/1/patch_state --
0
-- proc/1/cmdline --
/sbin/init<NUL>
-- proc/2/task/2/stat --
2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/2/task/2/comm --
kthreadd
-- proc/2/task/2/patch_state --
0
-- proc/2/cmdline --
`))
	if err := fakefs.Unpack(a, root); err != nil {
		t.Fatal(err)
	}
	return &pokeTree{t: t, root: root, real: map[int]string{}, comm: map[int]string{1: "systemd", 2: "kthreadd"}}
}

func (p *pokeTree) write(rel string, data []byte) {
	p.t.Helper()
	path := filepath.Join(p.root, "proc", rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// addReal copies process pid into the tree with the given patch_state; a
// non-empty state letter replaces the real one. With extraThread, a second
// thread of the process is copied too, with the same patch_state.
func (p *pokeTree) addReal(pid, patchState int, state string, extraThread bool) {
	p.t.Helper()
	p.real[pid] = state
	tids := []int{pid}
	if extraThread {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			p.t.Fatal(err)
		}
		for _, e := range entries {
			if tid, _ := strconv.Atoi(e.Name()); tid != pid && tid > 0 {
				tids = append(tids, tid)
				break
			}
		}
		if len(tids) != 2 {
			p.t.Fatalf("process %d has a single thread", pid)
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(fmt.Sprintf("%d/cmdline", pid), cmdline)
	for _, tid := range tids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
		if err != nil {
			p.t.Fatal(err)
		}
		if tid == pid {
			p.comm[pid] = strings.TrimSpace(string(comm))
		}
		p.write(fmt.Sprintf("%d/task/%d/comm", pid, tid), comm)
		p.write(fmt.Sprintf("%d/task/%d/patch_state", pid, tid), []byte(strconv.Itoa(patchState)+"\n"))
	}
	p.refresh(pid, tids...)
}

// refresh copies the current stat of the threads of a real process.
func (p *pokeTree) refresh(pid int, tids ...int) {
	p.t.Helper()
	if len(tids) == 0 {
		entries, err := os.ReadDir(filepath.Join(p.root, "proc", strconv.Itoa(pid), "task"))
		if err != nil {
			p.t.Fatal(err)
		}
		for _, e := range entries {
			tid, _ := strconv.Atoi(e.Name())
			tids = append(tids, tid)
		}
	}
	for _, tid := range tids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			p.t.Fatal(err)
		}
		if s := p.real[pid]; s != "" {
			stat = setState(stat, s)
		}
		p.write(fmt.Sprintf("%d/task/%d/stat", pid, tid), stat)
	}
}

// refreshAll copies the stat files of every real process again.
func (p *pokeTree) refreshAll() {
	for pid := range p.real {
		p.refresh(pid)
	}
}

type killCall struct {
	PID int
	Sig syscall.Signal
}

// signaller stands in for kill(2): it records every call, sends the signal
// only to the test's own helper processes, and after a SIGSTOP waits until
// the process shows state T in the real /proc, then copies that stat into
// the fake tree as the real procfs would show it.
type signaller struct {
	t       *testing.T
	tree    *pokeTree
	helpers map[int]*helper

	mu      sync.Mutex
	calls   []killCall
	stopped map[int]bool
}

func (s *signaller) kill(pid int, sig syscall.Signal) error {
	s.mu.Lock()
	s.calls = append(s.calls, killCall{pid, sig})
	s.mu.Unlock()
	if _, ok := s.helpers[pid]; !ok {
		return nil // never signal anything but the helpers
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	if sig != syscall.SIGSTOP {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := procState(pid)
		if err != nil {
			return err
		}
		if st == "T" {
			break
		}
		if time.Now().After(deadline) {
			s.t.Errorf("process %d still in state %s after SIGSTOP", pid, st)
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	s.stopped[pid] = true
	s.mu.Unlock()
	s.tree.refresh(pid)
	return nil
}

func (s *signaller) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.stopped = nil, map[int]bool{}
}

// TestPokeRealProcesses runs kgr poke against real processes it started,
// put in a fake tree among processes it must never signal, and checks that
// the pokeable ones really were stopped and continued and that the others
// got no signal.
func TestPokeRealProcesses(t *testing.T) {
	t.Parallel()
	tree := newPokeTree(t)
	self, parent, pgrp := os.Getpid(), os.Getppid(), syscall.Getpgrp()

	// Pokeable: blocking user processes in process groups of their own;
	// the first blocks with two threads and is poked once.
	poke1, poke2 := startHelper(t, true), startHelper(t, true)
	tree.addReal(poke1.pid, 0, "", true)
	tree.addReal(poke2.pid, 0, "", false)
	// Never signalled: one in uninterruptible sleep, one in the test's
	// process group, one that is not blocking, the test itself and its
	// parent; and PID 1 and kthreadd from the tree.
	dstate, sameGroup, switched := startHelper(t, true), startHelper(t, false), startHelper(t, true)
	tree.addReal(dstate.pid, 0, "D", false)
	tree.addReal(sameGroup.pid, 0, "", false)
	tree.addReal(switched.pid, 1, "", false)
	tree.addReal(self, 0, "", false)
	if parent != 1 {
		tree.addReal(parent, 0, "", false)
	}

	sig := &signaller{t: t, tree: tree, helpers: map[int]*helper{
		poke1.pid: poke1, poke2.pid: poke2, dstate.pid: dstate, sameGroup.pid: sameGroup, switched.pid: switched,
	}}
	run := func(args ...string) (string, string, cli.ExitCode) {
		t.Helper()
		tree.refreshAll()
		sig.reset()
		var stdout, stderr bytes.Buffer
		env := &cli.Env{
			IO:       &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
			Getpid:   os.Getpid,
			Getppid:  os.Getppid,
			Getpgrp:  syscall.Getpgrp,
			OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(sig.kill)}),
			Sleep:    time.Sleep,
			Geteuid:  os.Geteuid,
		}
		argv := append([]string{"kgr", "--sysfs", filepath.Join(tree.root, "sys"), "--procfs", filepath.Join(tree.root, "proc")}, args...)
		code := cli.Run(argv, env)
		return stdout.String(), stderr.String(), code
	}

	pokeable := []int{poke1.pid, poke2.pid}
	sort.Ints(pokeable)
	type skip struct {
		PID    int
		Comm   string
		Reason string
	}
	skips := []skip{
		{1, "systemd", "PID 1"},
		{2, "kthreadd", "kernel thread"},
		{dstate.pid, tree.comm[dstate.pid], "uninterruptible sleep (state D)"},
		{sameGroup.pid, tree.comm[sameGroup.pid], "in klp's process group"},
		{self, tree.comm[self], "klp itself"},
	}
	if parent != 1 {
		skips = append(skips, skip{parent, tree.comm[parent], "klp's parent process"})
	}
	sort.Slice(skips, func(i, j int) bool { return skips[i].PID < skips[j].PID })
	if pgrp == self {
		t.Logf("the test leads its process group %d", pgrp)
	}

	// checkSignals checks the kill calls, the stopped states seen and the
	// SIGCONTs the helpers got.
	checkSignals := func(label string) {
		t.Helper()
		var want []killCall
		for _, pid := range pokeable {
			want = append(want, killCall{pid, syscall.SIGSTOP}, killCall{pid, syscall.SIGCONT})
		}
		sig.mu.Lock()
		calls, stopped := sig.calls, sig.stopped
		sig.mu.Unlock()
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("%s: kill calls: unexpected diff (-want +got):\n%s", label, diff)
		}
		for _, pid := range pokeable {
			if !stopped[pid] {
				t.Errorf("%s: process %d was never seen stopped", label, pid)
			}
			select {
			case <-sig.helpers[pid].conts:
			case <-time.After(30 * time.Second):
				t.Errorf("%s: process %d got no SIGCONT", label, pid)
			}
		}
		// The others got nothing: every signal goes through sig.kill,
		// which records it before sending (the calls above), and none
		// has arrived unexpectedly.
		for _, h := range []*helper{dstate, sameGroup, switched, poke1, poke2} {
			select {
			case <-h.conts:
				t.Errorf("%s: process %d got an unexpected SIGCONT", label, h.pid)
			default:
			}
		}
		for _, pid := range pokeable {
			if st, err := procState(pid); err != nil || st == "T" {
				t.Errorf("%s: process %d left in state %q (%v)", label, pid, st, err)
			}
		}
	}

	t.Run("text", func(t *testing.T) {
		stdout, stderr, code := run("-v", "poke")
		var want strings.Builder
		for _, s := range skips {
			fmt.Fprintf(&want, "skipped %d (%s): %s\n", s.PID, s.Comm, s.Reason)
		}
		// The plan, printed whole before the first signal, by PID.
		want.Reset()
		type line struct {
			pid  int
			text string
		}
		var ls []line
		for _, s := range skips {
			ls = append(ls, line{s.PID, fmt.Sprintf("skipped %d (%s): %s\n", s.PID, s.Comm, s.Reason)})
		}
		for _, pid := range pokeable {
			ls = append(ls, line{pid, fmt.Sprintf("poking %d (%s)\n", pid, tree.comm[pid])})
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].pid < ls[j].pid })
		for _, l := range ls {
			want.WriteString(l.text)
		}
		if diff := cmp.Diff(want.String(), stdout); diff != "" {
			t.Errorf("stdout: unexpected diff (-want +got):\n%s", diff)
		}
		if code != cli.ExitOK || stderr != "" {
			t.Errorf("exit status %d, stderr %q, want 0 and nothing", code, stderr)
		}
		checkSignals("kgr -v poke")
	})

	t.Run("json", func(t *testing.T) {
		stdout, stderr, code := run("--json", "poke")
		if code != cli.ExitOK || stderr != "" {
			t.Errorf("exit status %d, stderr %q, want 0 and nothing", code, stderr)
		}
		type entry struct {
			PID    int    `json:"pid"`
			Comm   string `json:"comm"`
			Reason string `json:"reason,omitempty"`
		}
		type doc struct {
			SchemaVersion int     `json:"schema_version"`
			DryRun        bool    `json:"dry_run"`
			Poked         []entry `json:"poked"`
			Skipped       []entry `json:"skipped"`
			Failed        []entry `json:"failed"`
		}
		want := doc{SchemaVersion: 1, Failed: []entry{}}
		for _, pid := range pokeable {
			want.Poked = append(want.Poked, entry{PID: pid, Comm: tree.comm[pid]})
		}
		for _, s := range skips {
			want.Skipped = append(want.Skipped, entry(s))
		}
		var got doc
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("stdout is not the poke document: %v\n%s", err, stdout)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("JSON: unexpected diff (-want +got):\n%s", diff)
		}
		checkSignals("kgr --json poke")
	})
}

// TestPokeKillErrors checks what poke does when kill fails: a process that
// has exited (ESRCH) is neither poked nor failed; one that cannot be
// signalled (EPERM) is reported and makes the exit status 1.
func TestPokeKillErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("-- sys/kernel/livepatch/lp/enabled --\n1\n-- sys/kernel/livepatch/lp/transition --\n1\n")
	for _, p := range []struct {
		pid  int
		comm string
	}{{3001, "gone"}, {3002, "locked"}, {3003, "fine"}} {
		fmt.Fprintf(&b, "-- proc/%d/task/%d/stat --\n%d (%s) S 1 %d %d 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", p.pid, p.pid, p.pid, p.comm, p.pid, p.pid)
		fmt.Fprintf(&b, "-- proc/%d/task/%d/comm --\n%s\n-- proc/%d/task/%d/patch_state --\n0\n-- proc/%d/cmdline --\n/usr/bin/%s<NUL>\n", p.pid, p.pid, p.comm, p.pid, p.pid, p.pid, p.comm)
	}
	if err := fakefs.Unpack(txtar.Parse([]byte(b.String())), root); err != nil {
		t.Fatal(err)
	}
	var calls []killCall
	kill := func(pid int, sig syscall.Signal) error {
		calls = append(calls, killCall{pid, sig})
		switch pid {
		case 3001:
			return syscall.ESRCH
		case 3002:
			return syscall.EPERM
		}
		return nil
	}
	for _, tc := range []struct {
		args       []string
		wantStdout string
	}{
		{[]string{"-v", "poke"}, "poking 3001 (gone)\npoking 3002 (locked)\npoking 3003 (fine)\n"},
		{[]string{"--json", "poke"}, `{
  "schema_version": 1,
  "dry_run": false,
  "poked": [
    {
      "pid": 3003,
      "comm": "fine"
    }
  ],
  "skipped": [],
  "failed": [
    {
      "pid": 3002,
      "comm": "locked",
      "reason": "send SIGSTOP: operation not permitted"
    }
  ]
}
`},
	} {
		calls = nil
		var stdout, stderr bytes.Buffer
		env := &cli.Env{
			IO:       &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
			Getpid:   func() int { return fakePID },
			Getppid:  func() int { return fakePPID },
			Getpgrp:  func() int { return fakePGRP },
			OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(kill)}),
			Sleep:    func(time.Duration) {},
			Geteuid:  func() int { return 0 },
		}
		code := cli.Run(append([]string{"kgr", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}, tc.args...), env)
		if code != cli.ExitError {
			t.Errorf("%v: exit status %d, want 1", tc.args, code)
		}
		if diff := cmp.Diff(tc.wantStdout, stdout.String()); diff != "" {
			t.Errorf("%v: stdout: unexpected diff (-want +got):\n%s", tc.args, diff)
		}
		wantErr := "kgr: could not signal 1 process(es): 3002 (locked): send SIGSTOP: operation not permitted\n"
		if diff := cmp.Diff(wantErr, stderr.String()); diff != "" {
			t.Errorf("%v: stderr: unexpected diff (-want +got):\n%s", tc.args, diff)
		}
		// No SIGCONT to a process that could not be stopped; the one that
		// was stopped is always continued.
		want := []killCall{{3001, syscall.SIGSTOP}, {3002, syscall.SIGSTOP}, {3003, syscall.SIGSTOP}, {3003, syscall.SIGCONT}}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("%v: kill calls: unexpected diff (-want +got):\n%s", tc.args, diff)
		}
	}
}

// TestPokeDryRun: --dry-run prints the plan and signals nothing.
func TestPokeDryRun(t *testing.T) {
	t.Parallel()
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-blocking.txtar"))
	kills := &killRecorder{}
	for _, args := range [][]string{{"poke", "--dry-run"}, {"--json", "poke", "--dry-run"}} {
		r := runGoldenEnv(t, root, goldenCommand{"kgr", args}, kills)
		if r.code != cli.ExitOK || len(kills.calls) != 0 {
			t.Errorf("%q: exit %d, signals %q", args, r.code, kills.calls)
		}
		if args[0] != "--json" {
			want := "would poke 812 (rsyslogd)\nskipped 1204 (nfsd): kernel thread\nskipped 1205 (nfsd): kernel thread\nwould poke 2050 (python3)\nskipped 2210 (cp): uninterruptible sleep (state D)\n"
			if diff := cmp.Diff(want, r.stdout); diff != "" {
				t.Errorf("stdout: unexpected diff (-want +got):\n%s", diff)
			}
			continue
		}
		if !strings.Contains(r.stdout, `"dry_run": true`) || !strings.Contains(r.stdout, `"pid": 2050`) {
			t.Errorf("JSON: %s", r.stdout)
		}
	}
}
