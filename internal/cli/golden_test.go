package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/exporter"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// fixtureDir holds the fixture trees shared by every package's tests.
const fixtureDir = "../../testdata"

// goldenDir holds one directory per fixture, one file per command.
const goldenDir = "testdata/golden"

// Identities of the fake klp process in golden runs. They collide with no
// PID of any fixture, so kgr poke treats every fixture process as foreign.
const (
	fakePID  = 4242
	fakePPID = 4241
	fakePGRP = 4240
)

// goldenTime is the clock of golden runs: a scrape takes no time.
var goldenTime = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// goldenCommand is one command line run against every fixture.
type goldenCommand struct {
	prog string   // "klp" or "kgr" (args[0])
	args []string // after the --sysfs/--procfs options
}

// name is the golden file's base name: "klp -vv --json blocking" gives
// "klp_vv_json_blocking".
func (c goldenCommand) name() string {
	parts := []string{c.prog}
	for _, a := range c.args {
		parts = append(parts, strings.TrimLeft(a, "-"))
	}
	return strings.Join(parts, "_")
}

func (c goldenCommand) String() string {
	return strings.Join(append([]string{c.prog}, c.args...), " ")
}

func (c goldenCommand) json() bool {
	for _, a := range c.args {
		if a == "--json" {
			return true
		}
	}
	return false
}

func (c goldenCommand) verbosity() int {
	n := 0
	for _, a := range c.args {
		if strings.HasPrefix(a, "-v") {
			n += strings.Count(a, "v")
		}
	}
	return n
}

func goldenCommands() []goldenCommand {
	var cmds []goldenCommand
	for _, args := range [][]string{
		{"status"}, {"-v", "status"}, {"check"}, {"-v", "check"},
		{"patches"}, {"-v", "patches"}, {"-vv", "patches"},
		{"blocking"}, {"-v", "blocking"}, {"-vv", "blocking"},
		{"blocking", "--why"}, {"list"},
	} {
		cmds = append(cmds,
			goldenCommand{"klp", args},
			goldenCommand{"klp", append([]string{"--json"}, args...)})
	}
	// The exposition has no JSON form.
	cmds = append(cmds, goldenCommand{"klp", []string{"metrics"}})
	for _, args := range [][]string{
		{"status"}, {"check"}, {"patches"}, {"-v", "patches"},
		{"blocking"}, {"-v", "blocking"}, {"-vv", "blocking"},
		{"blocking_threads"}, {"-v", "blocking_threads"},
		{"poke"}, {"-v", "poke"}, {"--json", "poke"},
	} {
		cmds = append(cmds, goldenCommand{"kgr", args})
	}
	return cmds
}

// fakePackages answers package questions from fixed data, like an rpm
// database would for the modules of one fixture.
type fakePackages struct {
	pkgs  map[string]admin.PackageInfo
	notes map[string][]string
	errs  map[string]error

	mu    sync.Mutex
	calls []string
}

func (f *fakePackages) Describe(module string, verbose int) (*admin.PackageInfo, []string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s/%d", module, verbose))
	f.mu.Unlock()
	notes := f.notes[module]
	if verbose >= 2 {
		// A real source asks zypper about updates only at -vv.
		notes = append(notes, "repository metadata is 9 days old; run zypper refresh for current update status")
	}
	if err := f.errs[module]; err != nil {
		return nil, notes, err
	}
	p, ok := f.pkgs[module]
	if !ok {
		return nil, notes, nil
	}
	if verbose < 2 {
		p.Expiration, p.Update = "", ""
	}
	return &p, notes, nil
}

// packagesFor returns the package source of a fixture, nil for most: klp
// then prints no RPM lines at all.
func packagesFor(fixture string) *fakePackages {
	switch fixture {
	case "kernel-6.11":
		return &fakePackages{
			pkgs: map[string]admin.PackageInfo{
				"livepatch_3_1_1": {
					Manager: "rpm", Name: "kernel-livepatch-6_11_8-1-default", Version: "3", Release: "1.1", Arch: "x86_64",
					Full:       "kernel-livepatch-6_11_8-1-default-3-1.1.x86_64",
					CVEs:       []string{"CVE-2024-53104", "CVE-2024-50302", "CVE-2024-50264", "CVE-2024-49967"},
					Bugs:       []string{"bsc#1233228", "bsc#1232612"},
					Expiration: "2025-11-15",
					Update:     "update available (4-1.1)",
				},
			},
			notes: map[string][]string{
				"klp_test_hotfix": {"/lib/modules/6.11.8-1-default/extra/klp_test_hotfix.ko is not owned by any package"},
			},
		}
	case "kernel-5.1":
		return &fakePackages{
			pkgs: map[string]admin.PackageInfo{
				// SUSE's initial patch: a changelog with no fixes.
				"livepatch_1_5_3_2": {
					Manager: "rpm", Name: "kernel-livepatch-5_3_18-24_34-default", Version: "1", Release: "5.3.2", Arch: "x86_64",
					Full:       "kernel-livepatch-5_3_18-24_34-default-1-5.3.2.x86_64",
					Expiration: "2021-11-05",
					Update:     "up to date",
				},
			},
			errs: map[string]error{
				"kpatch_hotfix_tcp": errors.New("rpm -qf /lib/modules/5.3.18-24.34-default/extra/kpatch_hotfix_tcp.ko: exit status 1: error: rpmdb: BDB0113 Thread/process 1711/139862 failed"),
			},
		}
	case "sle12-kgraft":
		return &fakePackages{
			pkgs: map[string]admin.PackageInfo{
				"kgraft_patch_3_2_1": {
					Manager: "rpm", Name: "kgraft-patch-3_12_51-60_25-default", Version: "3", Release: "2.1", Arch: "x86_64",
					Full: "kgraft-patch-3_12_51-60_25-default-3-2.1.x86_64",
					CVEs: []string{"CVE-2016-2384", "CVE-2016-0774", "CVE-2015-8812", "CVE-2015-8709", "CVE-2015-8660", "CVE-2015-8539", "CVE-2013-7446"},
				},
			},
		}
	}
	return nil
}

// killRecorder stands in for kill(2) in golden runs: it records the call
// and signals nothing.
type killRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (k *killRecorder) kill(pid int, sig syscall.Signal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("%s %d", sigName(sig), pid))
	return nil
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGCONT:
		return "SIGCONT"
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// result is what one command did.
type result struct {
	stdout, stderr string
	code           cli.ExitCode
	kills          []string
}

// runGolden runs one command against the tree at root, with a test
// environment in which nothing leaves the process.
func runGolden(t *testing.T, root string, c goldenCommand, pkgs *fakePackages) result {
	t.Helper()
	return runGoldenPkgs(t, root, c, pkgs, &killRecorder{})
}

// runGoldenEnv is runGolden with the caller's kill recorder.
func runGoldenEnv(t *testing.T, root string, c goldenCommand, kills *killRecorder) result {
	t.Helper()
	return runGoldenPkgs(t, root, c, nil, kills)
}

func runGoldenPkgs(t *testing.T, root string, c goldenCommand, pkgs *fakePackages, kills *killRecorder) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cli.Env{
		IO:       &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
		Getpid:   func() int { return fakePID },
		Getppid:  func() int { return fakePPID },
		Getpgrp:  func() int { return fakePGRP },
		OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(kills.kill)}),
		Sleep:    func(time.Duration) {},
		Now:      func() time.Time { return goldenTime },
		Geteuid:  func() int { return 0 },
		Packages: nil,
		// An empty store under the fixture: list reads nothing of the host.
		Store: store.Store{Dir: filepath.Join(root, "var", "lib", "klp")},
		// klp metrics in process, as klp-exporter runs it.
		Exporter: exporter.Commands{},
	}
	if pkgs != nil {
		env.Packages = pkgs
	}
	args := append([]string{c.prog, "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}, c.args...)
	code := cli.Run(args, env)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code, kills: kills.calls}
}

// format renders a result as a golden file, with the fixture's temporary
// directory replaced by $ROOT.
func (r result) format(c goldenCommand, root string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", c)
	fmt.Fprintf(&b, "exit status %d\n", r.code)
	fmt.Fprintf(&b, "-- stdout --\n%s", r.stdout)
	fmt.Fprintf(&b, "-- stderr --\n%s", r.stderr)
	if c.prog == "kgr" && c.args[len(c.args)-1] == "poke" {
		fmt.Fprintf(&b, "-- signals --\n")
		for _, k := range r.kills {
			fmt.Fprintln(&b, k)
		}
	}
	return strings.ReplaceAll(b.String(), root, "$ROOT")
}

func fixtureNames(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no fixtures in %s", fixtureDir)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".txtar"))
	}
	return names
}

// TestGolden runs every command of goldenCommands against every fixture and
// compares stdout, stderr and the exit status with
// testdata/golden/<fixture>/<command>.txt. Run with -update to rewrite them,
// then review the diff: the golden files are the specification of the
// output.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, fixture := range fixtureNames(t) {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			root := fakefs.Load(t, filepath.Join(fixtureDir, fixture+".txtar"))
			for _, c := range goldenCommands() {
				t.Run(c.name(), func(t *testing.T) {
					t.Parallel()
					pkgs := packagesFor(fixture)
					r := runGolden(t, root, c, pkgs)
					checkInvariants(t, c, r, pkgs)
					got := r.format(c, root)
					path := filepath.Join(goldenDir, fixture, c.name()+".txt")
					if *update {
						if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run go test ./internal/cli -run TestGolden -update to create it)", err)
					}
					if diff := cmp.Diff(string(want), got); diff != "" {
						t.Errorf("%s: unexpected diff (-want +got):\n%s", c, diff)
					}
				})
			}
		})
	}
}

// checkInvariants checks what must hold for every command whatever the
// golden files say.
func checkInvariants(t *testing.T, c goldenCommand, r result, pkgs *fakePackages) {
	t.Helper()
	if r.code != cli.ExitOK && r.code != cli.ExitError {
		t.Errorf("%s: exit status %d, want 0 or 1", c, r.code)
	}
	if r.code != cli.ExitOK && r.stderr == "" && c.args[len(c.args)-1] != "check" {
		t.Errorf("%s: exit status %d with nothing on stderr", c, r.code)
	}
	if c.args[len(c.args)-1] != "poke" && len(r.kills) > 0 {
		t.Errorf("%s sent signals: %v", c, r.kills)
	}
	if pkgs != nil && c.verbosity() == 0 && len(pkgs.calls) > 0 {
		t.Errorf("%s asked for package data without -v: %v", c, pkgs.calls)
	}
	if c.json() {
		checkJSON(t, c, r)
	}
}

// checkJSON checks that a --json command printed exactly one JSON object
// with schema_version 1, unless it failed before printing anything.
func checkJSON(t *testing.T, c goldenCommand, r result) {
	t.Helper()
	if r.stdout == "" && r.code != cli.ExitOK && r.stderr != "" {
		return
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Errorf("%s: stdout is not a JSON object: %v\n%s", c, err, r.stdout)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: more than one JSON value on stdout (next: %v)", c, err)
	}
	if v, ok := doc["schema_version"].(float64); !ok || v != 1 {
		t.Errorf("%s: schema_version = %v, want 1", c, doc["schema_version"])
	}
	// docs/json.md: "field names are snake_case and stable".
	for _, k := range jsonKeys(doc, nil) {
		if !snakeCase.MatchString(k) {
			t.Errorf("%s: JSON field %q is not snake_case", c, k)
		}
	}
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// jsonKeys returns the object keys used anywhere in v, once each.
func jsonKeys(v any, seen map[string]bool) []string {
	if seen == nil {
		seen = map[string]bool{}
	}
	var keys []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
			keys = append(keys, jsonKeys(e, seen)...)
		}
	case []any:
		for _, e := range v {
			keys = append(keys, jsonKeys(e, seen)...)
		}
	}
	sort.Strings(keys)
	return keys
}

// TestGoldenNoStale fails on golden files that no command writes any more,
// so that a renamed command does not leave an unchecked file behind.
func TestGoldenNoStale(t *testing.T) {
	t.Parallel()
	if *update {
		t.Skip("golden files are being rewritten")
	}
	want := map[string]bool{}
	for _, f := range fixtureNames(t) {
		for _, c := range goldenCommands() {
			want[filepath.Join(goldenDir, f, c.name()+".txt")] = true
		}
	}
	var stale []string
	err := filepath.WalkDir(goldenDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !want[path] {
			stale = append(stale, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("golden files that no command checks (delete them):\n%s", strings.Join(stale, "\n"))
	}
}
