package cli_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/klp-project/klp/docs/schema"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/exporter"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

// runCLI runs klp or kgr with args (after the program name) in a test
// environment; pkgs answers package questions (nil: none).
func runCLI(t *testing.T, args []string, pkgs admin.PackageSource, st store.Store) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	kills := &killRecorder{}
	env := &cli.Env{
		IO:       &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
		Getpid:   func() int { return fakePID },
		Getppid:  func() int { return fakePPID },
		Getpgrp:  func() int { return fakePGRP },
		OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(kills.kill)}),
		Sleep:    func(time.Duration) {},
		Now:      func() time.Time { return goldenTime },
		Geteuid:  func() int { return 0 },
		Packages: pkgs,
		Store:    st,
		Exporter: exporter.Commands{},
	}
	code := cli.Run(args, env)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code, kills: kills.calls}
}

// noPackages fails the test if asked: a snapshot's package data is what
// its machine said, never what this machine's package manager says.
type noPackages struct{ t *testing.T }

func (p noPackages) Describe(module string, verbose int) (*admin.PackageInfo, []string, error) {
	p.t.Errorf("the package source was asked about %s with a snapshot", module)
	return nil, nil, nil
}

// takeSnapshot runs klp snapshot of the fixture tree at root and returns
// the archive's path.
func takeSnapshot(t *testing.T, root string, pkgs admin.PackageSource, extra ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "snap.tar.zst")
	args := append([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "snapshot", "-o", file}, extra...)
	r := runCLI(t, args, pkgs, store.Store{})
	if r.code != cli.ExitOK {
		t.Fatalf("klp snapshot: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return file
}

// TestGoldenSnapshot is the golden test again, read from a snapshot: for
// every fixture tree, klp snapshot captures it, and every golden command
// run with --snapshot prints exactly what the golden file says the tree
// gives, the tree's paths being the machine's own (/sys, /proc). Commands
// that change something refuse.
func TestGoldenSnapshot(t *testing.T) {
	t.Parallel()
	for _, fixture := range fixtureNames(t) {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			root := fakefs.Load(t, filepath.Join(fixtureDir, fixture+".txtar"))
			var pkgs admin.PackageSource
			if p := packagesFor(fixture); p != nil {
				pkgs = p
			}
			direct := takeSnapshot(t, root, pkgs)
			// A snapshot captured again from the first answers the same.
			again := filepath.Join(t.TempDir(), "again.tar.zst")
			if r := runCLI(t, []string{"klp", "--snapshot", direct, "snapshot", "-o", again}, noPackages{t}, store.Store{}); r.code != cli.ExitOK {
				t.Fatalf("klp --snapshot snapshot: exit %d: %s", r.code, r.stderr)
			}
			for _, file := range []string{direct, again} {
				checkManifest(t, file)
			}
			for _, c := range goldenCommands() {
				t.Run(c.name(), func(t *testing.T) {
					t.Parallel()
					file := direct
					if strings.Contains(c.name(), "v") {
						file = again // the verbose ones, from the copy
					}
					args := append([]string{c.prog, "--snapshot", file}, c.args...)
					r := runCLI(t, args, noPackages{t}, store.Store{})
					if c.args[len(c.args)-1] == "poke" {
						if r.code != cli.ExitError || !strings.Contains(r.stderr, "--snapshot names a snapshot, which klp only reads; nothing was changed") || len(r.kills) > 0 {
							t.Errorf("%s with --snapshot: exit %d, signals %v, stderr %q; want a refusal", c, r.code, r.kills, r.stderr)
						}
						return
					}
					want, err := os.ReadFile(filepath.Join(goldenDir, fixture, c.name()+".txt"))
					if err != nil {
						t.Fatal(err)
					}
					got := r.format(c, file)
					if diff := cmp.Diff(strings.ReplaceAll(string(want), "$ROOT", ""), got); diff != "" {
						t.Errorf("%s --snapshot: unexpected diff (-tree +snapshot):\n%s", c, diff)
					}
				})
			}
		})
	}
}

// manifestJSON returns the manifest.json entry of an archive, as written.
func manifestJSON(t *testing.T, file string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != snapshot.ManifestName {
		t.Fatalf("first entry %v, %v", hdr, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkManifest validates an archive's manifest.json against its schema.
func checkManifest(t *testing.T, file string) {
	t.Helper()
	if err := schema.Validate(schema.Manifest, manifestJSON(t, file)); err != nil {
		t.Errorf("%s: %v", file, err)
	}
}

// fixtureRoot loads a fixture tree.
func fixtureRoot(t *testing.T, fixture string) string {
	return fakefs.Load(t, filepath.Join(fixtureDir, fixture+".txtar"))
}

func TestSnapshotJSON(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, "transition-blocking")
	st := store.Store{Dir: t.TempDir()}
	rel := "6.12.0-160000.5-default"
	os.MkdirAll(filepath.Join(st.Dir, rel), 0o755)
	os.WriteFile(filepath.Join(st.Dir, rel, "livepatch_2_160000_1_1.ko"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(root, "proc/sys/kernel"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/sys/kernel/osrelease"), []byte(rel+"\n"), 0o644)
	file := filepath.Join(t.TempDir(), "s.tar.zst")
	r := runCLI(t, []string{"klp", "--json", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "snapshot", "-o", file}, nil, st)
	if r.code != cli.ExitOK || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if err := schema.Validate(schema.Snapshot, []byte(r.stdout)); err != nil {
		t.Error(err)
	}
	var doc struct {
		File     string            `json:"file"`
		Bytes    int64             `json:"bytes"`
		Manifest snapshot.Manifest `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	m := doc.Manifest
	if doc.File != file || doc.Bytes != fi.Size() || fi.Mode().Perm() != 0o600 {
		t.Errorf("file %q (%d bytes), on disk %d bytes, mode %v", doc.File, doc.Bytes, fi.Size(), fi.Mode())
	}
	tr := m.Transition
	if m.Source != "copied tree" || m.Redacted || tr.Moved || tr.Before == nil || *tr.Before.Patch != "livepatch_2_160000_1_1" || tr.Before.Target != "patched" || tr.After == nil {
		t.Errorf("manifest %+v", m)
	}
	if len(m.Store.Installed) != 1 || m.Store.Installed[0].Name != "livepatch_2_160000_1_1" || m.Store.Dirs[0] != st.Dir || len(m.Store.Dirs) != 1 {
		t.Errorf("store %+v", m.Store)
	}
	counts := map[string]int{}
	for _, c := range m.Captured {
		counts[c.What] = c.Files
	}
	// 5 blocking tasks, 16 threads of 14 processes: 14 cmdlines and 3
	// files per thread.
	if counts["stacks"] != 5 || counts["tasks"] != 14+3*16 || counts["livepatch"] == 0 || counts["modules"] == 0 {
		t.Errorf("captured %v", counts)
	}
	// The same document from --show, but the capture's duration.
	r2 := runCLI(t, []string{"klp", "snapshot", "--show", file, "--json"}, nil, store.Store{})
	if r2.code != cli.ExitOK || r2.stdout != r.stdout {
		t.Errorf("--show --json: exit %d, %s\n%s\nwant\n%s", r2.code, r2.stderr, r2.stdout, r.stdout)
	}
	r2 = runCLI(t, []string{"klp", "snapshot", "--show", file}, nil, store.Store{})
	for _, want := range []string{file + ": ", "copied tree", "transition: livepatch_2_160000_1_1 patching, unchanged during the capture",
		"tasks: 14 processes, 16 threads", "stacks: 5 blocking tasks, 5 stacks", "command lines: as they were (klp snapshot --redact to send it out)", "    tasks         62 file(s)"} {
		if !strings.Contains(r2.stdout, want) {
			t.Errorf("--show lacks %q:\n%s", want, r2.stdout)
		}
	}
	// list reads the snapshot's listing, not this machine's store.
	r2 = runCLI(t, []string{"klp", "--snapshot", file, "--json", "list"}, nil, store.Store{Dir: t.TempDir()})
	if !strings.Contains(r2.stdout, `"path": "`+filepath.Join(st.Dir, rel, "livepatch_2_160000_1_1.ko")+`"`) {
		t.Errorf("list on the snapshot:\n%s", r2.stdout)
	}
	// NAME lookups find the machine's file, which is not here.
	r2 = runCLI(t, []string{"klp", "--snapshot", file, "info", "livepatch_2_160000_1_1"}, nil, store.Store{})
	if r2.code != cli.ExitError || !strings.Contains(r2.stderr, "a snapshot holds the store's listing, not its module files") {
		t.Errorf("info NAME on a snapshot: exit %d, %q", r2.code, r2.stderr)
	}
}

// TestSnapshotRedact: --redact keeps the executable's name of each command
// line, and a snapshot captured again from a redacted one stays redacted.
func TestSnapshotRedact(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, "transition-blocking")
	plain := takeSnapshot(t, root, nil)
	redacted := takeSnapshot(t, root, nil, "--redact")
	want := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(runCLI(t, []string{"klp", "--snapshot", plain, "-v", "blocking"}, nil, store.Store{}).stdout), "\n") {
		tid, cmd, _ := strings.Cut(l, " ")
		want[tid] = cmd
	}
	got := runCLI(t, []string{"klp", "--snapshot", redacted, "-v", "blocking"}, nil, store.Store{}).stdout
	if got != "846 rsyslogd\n1204 [nfsd]\n1205 [nfsd]\n2050 python3\n2210 cp\n" {
		t.Errorf("redacted blocking -v:\n%s(plain: %q)", got, want)
	}
	if !strings.Contains(want["2210"], " ") {
		t.Errorf("the fixture's cp has no arguments to redact: %q", want["2210"])
	}
	for _, f := range []string{redacted} {
		a, err := snapshot.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Manifest().Redacted {
			t.Errorf("%s: manifest says not redacted", f)
		}
	}
	// Captured again without --redact: still redacted, and says so.
	again := filepath.Join(t.TempDir(), "again.tar.zst")
	if r := runCLI(t, []string{"klp", "--snapshot", redacted, "snapshot", "-o", again}, nil, store.Store{}); r.code != cli.ExitOK {
		t.Fatal(r.stderr)
	}
	a, err := snapshot.Open(again)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Manifest().Redacted || runCLI(t, []string{"klp", "--snapshot", again, "-v", "blocking"}, nil, store.Store{}).stdout != got {
		t.Errorf("the copy of a redacted snapshot: redacted %v", a.Manifest().Redacted)
	}
	// Redacting a snapshot after the fact.
	later := filepath.Join(t.TempDir(), "later.tar.zst")
	if r := runCLI(t, []string{"klp", "--snapshot", plain, "snapshot", "--redact", "-o", later}, nil, store.Store{}); r.code != cli.ExitOK {
		t.Fatal(r.stderr)
	}
	if out := runCLI(t, []string{"klp", "--snapshot", later, "-v", "blocking"}, nil, store.Store{}).stdout; out != got {
		t.Errorf("redacted after the fact:\n%s", out)
	}
}

// TestSnapshotRefusesChanges: every command that changes something refuses
// on a snapshot, in one line, before doing anything.
func TestSnapshotRefusesChanges(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, "transition-blocking")
	file := takeSnapshot(t, root, nil)
	mod := filepath.Join("..", "..", "modinfo", "testdata", "klp_vmlinux.ko")
	for _, args := range [][]string{
		{"klp", "load", mod}, {"klp", "load", "--all"}, {"klp", "unload", "livepatch_1_160000_1_1"}, {"klp", "unload", "--all"},
		{"klp", "disable", "livepatch_2_160000_1_1"}, {"klp", "enable", "livepatch_2_160000_1_1"}, {"klp", "wait"},
		{"klp", "signal"}, {"klp", "force", "--yes", "livepatch_2_160000_1_1"}, {"klp", "install", mod}, {"klp", "uninstall", "klp_vmlinux"},
		{"klp", "downgrade"}, {"kgr", "poke"}, {"klp", "--json", "load", mod},
	} {
		argv := append([]string{args[0], "--snapshot", file}, args[1:]...)
		r := runCLI(t, argv, noPackages{t}, store.Store{Dir: t.TempDir()})
		if r.code != cli.ExitError || len(r.kills) > 0 || !strings.Contains(r.stderr, "--snapshot names a snapshot, which klp only reads; nothing was changed") ||
			strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, signals %v, stderr %q", argv, r.code, r.kills, r.stderr)
		}
		if strings.Contains(strings.Join(args, " "), "--json") {
			if err := schema.Validate(schema.Error, []byte(r.stdout)); err != nil {
				t.Errorf("%q: %v", argv, err)
			}
		}
	}
}

func TestSnapshotUsage(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, "kernel-6.1")
	file := takeSnapshot(t, root, nil)
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	os.WriteFile(bad, []byte("not an archive"), 0o644)
	truncated := filepath.Join(t.TempDir(), "truncated.tar.zst")
	data, _ := os.ReadFile(file)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"klp", "--snapshot", file, "--sysfs", root, "status"}, "--snapshot cannot be combined with --sysfs or --procfs"},
		{[]string{"klp", "--snapshot", file, "--procfs", root, "status"}, "--snapshot cannot be combined with --sysfs or --procfs"},
		{[]string{"klp", "snapshot", "--show", file, "-o", "x"}, "--show reads a snapshot"},
		{[]string{"klp", "snapshot", "--show", file, "--redact"}, "--show reads a snapshot"},
		{[]string{"klp", "--json", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "snapshot", "-o", "-"}, "where --json would print its document"},
		{[]string{"klp", "--snapshot", bad, "status"}, "read snapshot " + bad + ": not a readable klp snapshot: not zstd-compressed"},
		{[]string{"klp", "--snapshot", truncated, "blocking"}, "read snapshot " + truncated + ": not a readable klp snapshot: truncated"},
		{[]string{"klp", "--snapshot", filepath.Join(t.TempDir(), "missing"), "list"}, "no such file or directory"},
		{[]string{"klp", "snapshot", "--show", bad}, "not zstd-compressed"},
		{[]string{"klp", "--snapshot", file, "snapshot", "-o", filepath.Join(t.TempDir(), "no", "dir", "x")}, "no such file or directory"},
	} {
		r := runCLI(t, c.args, nil, store.Store{})
		if r.code != cli.ExitError || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "klp: ") != 1 {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
	}
	r := runCLI(t, []string{"klp", "--json", "--snapshot", bad, "status"}, nil, store.Store{})
	if err := schema.Validate(schema.Error, []byte(r.stdout)); err != nil || r.code != cli.ExitError {
		t.Errorf("--json with a bad snapshot: exit %d, %v", r.code, err)
	}
}

// TestSnapshotStdout: -o - writes the archive to stdout and the summary to
// stderr, and never to a terminal.
func TestSnapshotStdout(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, "kernel-6.1")
	args := []string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "snapshot", "-o", "-"}
	r := runCLI(t, args, nil, store.Store{})
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stderr, "(stdout): ") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	a, err := snapshot.Read(strings.NewReader(r.stdout), snapshot.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest().Kernel.Interface != "livepatch" {
		t.Errorf("manifest %+v", a.Manifest())
	}
	var stdout, stderr bytes.Buffer
	env := &cli.Env{IO: &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr, OutTTY: true}}
	if code := cli.Run(args, env); code != cli.ExitError || stdout.Len() != 0 || !strings.Contains(stderr.String(), "not writing a compressed archive to a terminal") {
		t.Errorf("to a terminal: exit %d, %d bytes, %q", code, stdout.Len(), stderr.String())
	}
}
