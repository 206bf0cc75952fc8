package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/pkgmeta"
	"github.com/klp-project/klp/kernel"
)

// dgReply is a fake program's answer.
type dgReply struct {
	out  string
	code int
}

// dgRunner is a pkgmeta.Runner answering from a table keyed by the command
// line. Unknown commands fail the test.
type dgRunner struct {
	t         *testing.T
	installed []string
	replies   map[string]dgReply
	// attachCode is the exit status of the attached (downgrade) command;
	// attachOut is what it prints.
	attachCode int
	attachOut  string
	attached   [][]string
	attachIn   string // what the command read from stdin
}

func (r *dgRunner) LookPath(name string) (string, error) {
	for _, p := range r.installed {
		if p == name {
			return "/usr/bin/" + name, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func (r *dgRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	rep, ok := r.replies[line]
	if !ok {
		r.t.Errorf("unexpected command %q", line)
		return nil, &pkgmeta.ExitError{Name: name, Code: 127}
	}
	if rep.code != 0 {
		return []byte(rep.out), &pkgmeta.ExitError{Name: name, Code: rep.code}
	}
	return []byte(rep.out), nil
}

func (r *dgRunner) Attach(ctx context.Context, stdio pkgmeta.Stdio, name string, args ...string) error {
	r.attached = append(r.attached, append([]string{name}, args...))
	in, _ := io.ReadAll(stdio.In)
	r.attachIn = string(in)
	io.WriteString(stdio.Out, r.attachOut)
	if r.attachCode != 0 {
		return &pkgmeta.ExitError{Name: name, Code: r.attachCode}
	}
	return nil
}

const (
	dgKrel   = "5.14.21-150400.24.33-default"
	dgPkg    = "kernel-livepatch-5_14_21-150400_24_33-default"
	dgModRel = "lib/modules/" + dgKrel + "/livepatch/livepatch-6-150400_2_2.ko"
	dgSearch = "zypper --non-interactive --quiet --xmlout search -s --match-exact " + dgPkg
	dgQF     = `rpm -qf --qf %{NAME}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n `
	dgXML    = `<?xml version='1.0'?>
<stream>
<search-result version="0.0">
<solvable-list>
<solvable status="installed" name="` + dgPkg + `" kind="package" edition="6-150400.2.2" arch="x86_64" repository="(System Packages)"/>
<solvable status="other-version" name="` + dgPkg + `" kind="package" edition="5-150400.2.1" arch="x86_64" repository="Updates"/>
<solvable status="other-version" name="` + dgPkg + `" kind="package" edition="4-150400.2.1" arch="x86_64" repository="Updates"/>
</solvable-list>
</search-result>
</stream>
`
)

// dgTree writes a fake sysfs/procfs/module tree and returns its root.
// patches maps a patch name to its files (enabled, transition, ...).
func dgTree(t *testing.T, patches map[string]map[string]string, extra map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/sys/kernel/osrelease": dgKrel + "\n",
		"sys/kernel/livepatch/":     "",
		dgModRel:                    "",
	}
	for name, attrs := range patches {
		for f, v := range attrs {
			files["sys/kernel/livepatch/"+name+"/"+f] = v + "\n"
		}
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var dgOnePatch = map[string]map[string]string{
	"livepatch_6_150400_2_2": {"enabled": "1", "transition": "0"},
}

// dgRun runs klp with a real packageSource over a fake runner and the tree
// at root.
func dgRun(t *testing.T, root string, r *dgRunner, stdin string, euid int, args ...string) (stdout, stderr string, code ExitCode) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{
		IO:       &IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut},
		Geteuid:  func() int { return euid },
		OpenLive: fakefs.OpenLive(kernel.Seams{}),
		Packages: admin.NewPackages(pkgmeta.Config{
			Runner:        r,
			ModulesDirs:   []string{filepath.Join(root, "lib/modules")},
			StoreDirs:     []string{},
			LifecycleDirs: []string{},
			DocDir:        filepath.Join(root, "doc"),
		}),
	}
	argv := append([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}, args...)
	code = Run(argv, env)
	return out.String(), errOut.String(), code
}

func dgSUSE(t *testing.T, root string) *dgRunner {
	return &dgRunner{
		t:         t,
		installed: []string{"rpm", "zypper"},
		replies: map[string]dgReply{
			dgQF + filepath.Join(root, dgModRel): {out: dgPkg + "\t6\t150400.2.2\tx86_64\n"},
			dgSearch:                             {out: dgXML},
		},
		attachOut: "Loading repository data...\nThe following package is going to be downgraded:\n",
	}
}

func TestDowngrade(t *testing.T) {
	t.Parallel()
	const plan = "Downgrading " + dgPkg + " from 6-150400.2.2 to 5-150400.2.1:\n"
	tests := []struct {
		name  string
		args  []string
		stdin string
		euid  int
		setup func(r *dgRunner, root string) // changes to the SUSE runner
		tree  map[string]map[string]string   // nil: dgOnePatch

		wantCode     ExitCode
		wantStdout   string
		wantStderr   string
		wantRan      []string // the attached command, nil if none
		wantAttachIn string
	}{
		{
			name: "-n", args: []string{"-n", "downgrade"},
			wantStdout: plan + "zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Loading repository data...\nThe following package is going to be downgraded:\n",
			wantRan: []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
		{
			name: "confirmed", args: []string{"downgrade"}, stdin: "y\nanswer for zypper\n",
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Loading repository data...\nThe following package is going to be downgraded:\n",
			wantStderr: "Continue? [y/N] ",
			wantRan:    []string{"zypper", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
			// Only klp's answer was consumed; zypper gets the rest.
			wantAttachIn: "answer for zypper\n",
		},
		{
			name: "confirmed with yes", args: []string{"downgrade"}, stdin: " YES \n",
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Loading repository data...\nThe following package is going to be downgraded:\n",
			wantStderr: "Continue? [y/N] ",
			wantRan:    []string{"zypper", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
		{
			name: "declined", args: []string{"downgrade"}, stdin: "n\n",
			wantCode:   ExitError,
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n",
			wantStderr: "Continue? [y/N] klp: downgrade cancelled\n",
		},
		{
			name: "empty answer is no", args: []string{"downgrade"}, stdin: "\n",
			wantCode:   ExitError,
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n",
			wantStderr: "Continue? [y/N] klp: downgrade cancelled\n",
		},
		{
			name: "no answer", args: []string{"downgrade"},
			wantCode:   ExitError,
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n",
			wantStderr: "Continue? [y/N] \nklp: downgrade cancelled (no answer on standard input; use -n to downgrade without asking)\n",
		},
		{
			name: "zypper fails", args: []string{"-n", "downgrade"},
			setup:    func(r *dgRunner, root string) { r.attachCode = 8; r.attachOut = "Problem: nothing provides ...\n" },
			wantCode: ExitError,
			wantStdout: plan + "zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Problem: nothing provides ...\n",
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: run zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1: zypper: exit status 8\n",
			wantRan:    []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
		{
			name: "zypper says reboot", args: []string{"-n", "downgrade"},
			setup:      func(r *dgRunner, root string) { r.attachCode = 102; r.attachOut = "" },
			wantStdout: plan + "zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1\n",
			wantStderr: "klp: note: zypper reports that a reboot is needed (exit status 102)\n",
			wantRan:    []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
		{
			name: "no previous version", args: []string{"-n", "downgrade"},
			setup: func(r *dgRunner, root string) {
				r.replies[dgSearch] = dgReply{out: strings.ReplaceAll(strings.ReplaceAll(dgXML, `edition="5-150400.2.1"`, `edition="7-1"`), `edition="4-150400.2.1"`, `edition="6-150400.2.2"`)}
			},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: no previous version available: the repositories have no version of " + dgPkg + " older than 6-150400.2.2 (versions found: 6-150400.2.2, 7-1, 6-150400.2.2)\n",
		},
		{
			name: "zypper missing", args: []string{"-n", "downgrade"},
			setup:      func(r *dgRunner, root string) { r.installed = []string{"rpm"} },
			wantCode:   ExitError,
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: zypper is not installed; it is needed to list the versions of " + dgPkg + "\n",
		},
		{
			name: "zypper search fails", args: []string{"-n", "downgrade"},
			setup:      func(r *dgRunner, root string) { r.replies[dgSearch] = dgReply{code: 7} },
			wantCode:   ExitError,
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: search for " + dgPkg + ": zypper: exit status 7\n",
		},
		{
			name: "not owned", args: []string{"-n", "downgrade"},
			setup: func(r *dgRunner, root string) {
				r.replies[dgQF+filepath.Join(root, dgModRel)] = dgReply{code: 1, out: "file is not owned by any package\n"}
			},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: no installed package owns the module file: $ROOT/" + dgModRel + "; only patches installed from a package can be downgraded\n",
		},
		{
			name: "module file not found", args: []string{"-n", "downgrade"},
			tree:       map[string]map[string]string{"kpatch_local": {"enabled": "1"}},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade kpatch_local: find module kpatch_local: module file not found under $ROOT/lib/modules/" + dgKrel + "; only patches installed from a package can be downgraded\n",
		},
		{
			name: "no package manager", args: []string{"-n", "downgrade"},
			setup:      func(r *dgRunner, root string) { r.installed = nil },
			wantCode:   ExitError,
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: neither rpm nor dpkg is installed\n",
		},
		{
			name: "nothing loaded", args: []string{"-n", "downgrade"}, tree: map[string]map[string]string{},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade: no live patch is loaded\n",
		},
		{
			name: "nothing enabled", args: []string{"-n", "downgrade"},
			tree:       map[string]map[string]string{"livepatch_6_150400_2_2": {"enabled": "0", "transition": "0"}},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade: no live patch is enabled\n",
		},
		{
			name: "transition in progress", args: []string{"-n", "downgrade"},
			tree: map[string]map[string]string{
				"livepatch_6_150400_2_2": {"enabled": "1", "transition": "1"},
				"livepatch_5_150400_2_1": {"enabled": "1", "transition": "0"},
			},
			wantCode:   ExitError,
			wantStderr: "klp: downgrade: livepatch_6_150400_2_2 is in transition (patching); try again when 'klp status' says ready\n",
		},
		{
			name: "not root", args: []string{"downgrade"}, euid: 1000, stdin: "y\n",
			wantCode:   ExitError,
			wantStdout: plan + "zypper in --oldpackage " + dgPkg + "=5-150400.2.1\n",
			wantStderr: "klp: downgrade livepatch_6_150400_2_2: root privileges are needed to run zypper\n",
		},
		{
			name: "highest stack_order wins", args: []string{"-n", "downgrade"},
			tree: map[string]map[string]string{
				"livepatch_6_150400_2_2": {"enabled": "1", "transition": "0", "stack_order": "2"},
				"zz_other":               {"enabled": "1", "transition": "0", "stack_order": "1"},
			},
			wantStdout: plan + "zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Loading repository data...\nThe following package is going to be downgraded:\n",
			wantRan: []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
		{
			name: "without stack_order the last by name", args: []string{"-n", "downgrade"},
			tree: map[string]map[string]string{
				"livepatch_6_150400_2_2": {"enabled": "1", "transition": "0"},
				"aaa_other":              {"enabled": "1", "transition": "0"},
				"zzz_disabled":           {"enabled": "0", "transition": "0"},
			},
			wantStdout: plan + "zypper --non-interactive in --oldpackage " + dgPkg + "=5-150400.2.1\n" +
				"Loading repository data...\nThe following package is going to be downgraded:\n",
			wantRan: []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := tt.tree
			if tree == nil {
				tree = dgOnePatch
			}
			root := dgTree(t, tree, nil)
			r := dgSUSE(t, root)
			if tt.setup != nil {
				tt.setup(r, root)
			}
			stdout, stderr, code := dgRun(t, root, r, tt.stdin, tt.euid, tt.args...)
			stderr = strings.ReplaceAll(stderr, root, "$ROOT")
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			var ran []string
			if len(r.attached) == 1 {
				ran = r.attached[0]
			} else if len(r.attached) > 1 {
				t.Errorf("ran %d commands: %q", len(r.attached), r.attached)
			}
			if diff := cmp.Diff(tt.wantRan, ran); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
			if tt.wantAttachIn != "" && r.attachIn != tt.wantAttachIn {
				t.Errorf("command's stdin = %q, want %q", r.attachIn, tt.wantAttachIn)
			}
		})
	}
}

func TestDowngradeJSON(t *testing.T) {
	t.Parallel()
	command := []string{"zypper", "--non-interactive", "in", "--oldpackage", dgPkg + "=5-150400.2.1"}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		attachCode int
		wantCode   ExitCode
		wantRan    bool
		wantStderr string
	}{
		{name: "ran", args: []string{"--json", "-n", "downgrade"}, wantRan: true,
			wantStderr: "Loading repository data...\nThe following package is going to be downgraded:\n"},
		{name: "failed", args: []string{"--json", "-n", "downgrade"}, attachCode: 8, wantRan: true, wantCode: ExitError,
			wantStderr: "Loading repository data...\nThe following package is going to be downgraded:\nklp: downgrade livepatch_6_150400_2_2: run " + strings.Join(command, " ") + ": zypper: exit status 8\n"},
		{name: "declined", args: []string{"--json", "downgrade"}, stdin: "n\n", wantCode: ExitError,
			wantStderr: "Continue? [y/N] klp: downgrade cancelled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := dgTree(t, dgOnePatch, nil)
			r := dgSUSE(t, root)
			r.attachCode = tt.attachCode
			stdout, stderr, code := dgRun(t, root, r, tt.stdin, 0, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
			}
			cmdWant := command
			if !strings.Contains(strings.Join(tt.args, " "), "-n") {
				cmdWant = []string{"zypper", "in", "--oldpackage", dgPkg + "=5-150400.2.1"}
			}
			var cmdAny []any
			for _, c := range cmdWant {
				cmdAny = append(cmdAny, c)
			}
			want := map[string]any{
				"schema_version": float64(1), "patch": "livepatch_6_150400_2_2", "manager": "rpm", "package": dgPkg,
				"from": "6-150400.2.2", "to": "5-150400.2.1", "command": cmdAny, "ran": tt.wantRan,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

// dgFake is a Downgrader that is not a packageSource, as other tests'
// fakes are: downgrade must work with any implementation.
type dgFake struct {
	planErr error
	notes   []string
	plans   []string
}

func (f *dgFake) Describe(string, int) (*admin.PackageInfo, []string, error) { return nil, nil, nil }

func (f *dgFake) PlanDowngrade(module string, nonInteractive bool) (*admin.DowngradePlan, []string, error) {
	f.plans = append(f.plans, fmt.Sprintf("%s/%v", module, nonInteractive))
	if f.planErr != nil {
		return nil, f.notes, f.planErr
	}
	return &admin.DowngradePlan{Manager: "dpkg", Package: "lp", From: "3-1", To: "2-1", Command: []string{"apt-get", "--yes", "install", "--allow-downgrades", "lp=2-1"}}, f.notes, nil
}

func (f *dgFake) RunDowngrade(plan *admin.DowngradePlan, stdin io.Reader, stdout, stderr io.Writer) ([]string, error) {
	return nil, nil
}

func TestDowngradeWithOtherSources(t *testing.T) {
	t.Parallel()
	root := dgTree(t, dgOnePatch, nil)
	run := func(pkgs admin.PackageSource) (string, string, ExitCode) {
		var out, errOut bytes.Buffer
		env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Packages: pkgs, OpenLive: fakefs.OpenLive(kernel.Seams{})}
		code := Run([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "-n", "downgrade"}, env)
		return out.String(), errOut.String(), code
	}

	f := &dgFake{notes: []string{"a note", "a note"}}
	stdout, stderr, code := run(f)
	if code != ExitOK || stdout != "Downgrading lp from 3-1 to 2-1:\napt-get --yes install --allow-downgrades lp=2-1\n" || stderr != "klp: note: a note\n" {
		t.Errorf("fake: %d %q %q", code, stdout, stderr)
	}
	if !cmp.Equal(f.plans, []string{"livepatch_6_150400_2_2/true"}) {
		t.Errorf("plans = %q", f.plans)
	}

	f = &dgFake{planErr: errors.New("boom")}
	if _, stderr, code := run(f); code != ExitError || stderr != "klp: downgrade livepatch_6_150400_2_2: boom\n" {
		t.Errorf("plan error: %d %q", code, stderr)
	}

	// A admin.PackageSource that cannot downgrade (Describe only), and none.
	for _, pkgs := range []admin.PackageSource{describeOnly{}, nil} {
		if _, stderr, code := run(pkgs); code != ExitError || stderr != "klp: downgrade: no package manager support in this build\n" {
			t.Errorf("%T: %d %q", pkgs, code, stderr)
		}
	}
}

type describeOnly struct{}

func (describeOnly) Describe(string, int) (*admin.PackageInfo, []string, error) { return nil, nil, nil }

func TestDowngradeNoLivepatch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, d := range []string{"sys", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, stderr, code := dgRun(t, root, &dgRunner{t: t}, "", 0, "-n", "downgrade")
	if code != ExitError || !strings.HasPrefix(stderr, "klp: downgrade: kernel live patching not supported") {
		t.Errorf("%d %q", code, stderr)
	}
}

func TestReadAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		eof      bool
	}{
		{"y\nrest", "y", false},
		{"  no  \n", "no", false},
		{"y", "y", true},
		{"", "", true},
		{strings.Repeat("x", 5000) + "\n", strings.Repeat("x", 1024), false},
	}
	for _, tt := range tests {
		r := strings.NewReader(tt.in)
		got, err := readAnswer(r)
		if got != tt.want || errors.Is(err, io.EOF) != tt.eof {
			t.Errorf("readAnswer(%.10q) = %.10q, %v", tt.in, got, err)
		}
	}
	// It reads no further than the newline.
	r := strings.NewReader("y\nfor zypper\n")
	readAnswer(r)
	if rest, _ := io.ReadAll(r); string(rest) != "for zypper\n" {
		t.Errorf("left %q", rest)
	}
}

func TestShellJoin(t *testing.T) {
	t.Parallel()
	got := shellJoin([]string{"zypper", "in", "--oldpackage", "a=1:2-3.1", "it's", "", "x y"})
	if want := `zypper in --oldpackage a=1:2-3.1 'it'\''s' '' 'x y'`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDowngradeHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out}}
	if code := Run([]string{"klp", "downgrade", "--help"}, env); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"zypper in --oldpackage NAME=VERSION-RELEASE", "Continue? [y/N]", "-n", "--json", "Exit status", "stack_order", "apt-get"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help does not mention %q", s)
		}
	}
}
