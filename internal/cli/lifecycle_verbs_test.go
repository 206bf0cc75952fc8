package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klp-project/klp/docs/schema"
	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/lock"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/modinfo"
)

const fakeRelease = "6.12.0-fake"

// verbEnv runs klp commands against a fake kernel.
type verbEnv struct {
	t      *testing.T
	k      *fakekernel.Kernel
	env    *Env
	specs  map[string]*modinfo.Module
	audit  *auditLog
	out    *bytes.Buffer
	errOut *bytes.Buffer
}

type auditLog struct {
	mu      sync.Mutex
	records []string
}

func (a *auditLog) Record(r audit.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	target := r.Patch
	if r.File != "" {
		target = r.File
	}
	a.records = append(a.records, r.Action+" "+target+" "+r.Result)
}

func newVerbEnv(t *testing.T, opts fakekernel.Options) *verbEnv {
	t.Helper()
	k := fakekernel.New(t, opts)
	if err := os.WriteFile(filepath.Join(k.ProcRoot(), "sys", "kernel", "osrelease"), []byte(fakeRelease+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := &verbEnv{t: t, k: k, specs: map[string]*modinfo.Module{}, audit: &auditLog{}, out: &bytes.Buffer{}, errOut: &bytes.Buffer{}}
	dir := t.TempDir()
	v.env = &Env{
		IO:     &IOStreams{In: strings.NewReader(""), Out: v.out, ErrOut: v.errOut},
		Getpid: os.Getpid, Getppid: os.Getppid, Getpgrp: func() int { return -1 },
		Sleep:   func(time.Duration) {},
		Geteuid: func() int { return 0 },
		Kmod:    k.KmodOptions(),
		Open: func(r kernel.Roots) (*kernel.Handle, error) {
			if r.Sys == k.SysRoot() && r.Proc == k.ProcRoot() {
				return k.Handle(), nil
			}
			return kernel.Open(r)
		},
		OpenLive: func(r kernel.Roots) (*kernel.Live, error) {
			if r.Sys != k.SysRoot() || r.Proc != k.ProcRoot() {
				return nil, fmt.Errorf("%w: roots %+v are not the fake kernel's", kernel.ErrNotLive, r)
			}
			return k.Live(), nil
		},
		Audit:    func() audit.Auditor { return v.audit },
		LockPath: filepath.Join(dir, "klp.lock"),
		Store:    store.Store{Dir: filepath.Join(dir, "klp"), Kpatch: filepath.Join(dir, "kpatch")},
		Inspect: func(path string) (*modinfo.Module, error) {
			if m, ok := v.specs[path]; ok {
				return m, nil
			}
			return modinfo.Open(path)
		},
	}
	return v
}

func (v *verbEnv) module(name string, funcs ...string) string {
	v.t.Helper()
	var fs []fakekernel.Func
	for _, f := range funcs {
		fs = append(fs, fakekernel.Func{Name: f})
		v.k.SetSymbol("vmlinux", f, 1)
	}
	path := v.k.AddModule(v.t, fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: fs}}}})
	v.specs[path] = &modinfo.Module{Name: name, Livepatch: true, Vermagic: fakeRelease + " SMP preempt mod_unload "}
	return path
}

// run runs klp with the fake kernel's roots and returns the exit code.
func (v *verbEnv) run(args ...string) ExitCode {
	v.t.Helper()
	v.out.Reset()
	v.errOut.Reset()
	full := append([]string{"klp", "--sysfs", v.k.SysRoot(), "--procfs", v.k.ProcRoot()}, args...)
	code := Run(full, v.env)
	// Every document a verb prints is valid against its published schema.
	if slices.Contains(args, "--json") {
		if doc, err := schema.ValidateOutput(full[1:], v.out.Bytes()); err != nil {
			v.t.Errorf("klp %q printed an invalid %s document: %v\n%s", args, doc, err, v.out)
		}
	}
	return code
}

func TestLoadVerb(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	path := v.module("lp_cmdline", "cmdline_proc_show")
	if code := v.run("load", path); code != ExitOK {
		t.Fatalf("load: exit %d, stderr %q", code, v.errOut)
	}
	if !strings.HasPrefix(v.out.String(), "lp_cmdline: patched (") {
		t.Errorf("load output %q", v.out)
	}
	if code := v.run("load", path); code != ExitOK || !strings.Contains(v.errOut.String(), "already loaded") {
		t.Errorf("second load: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("--json", "unload", "lp_cmdline"); code != ExitOK {
		t.Fatalf("unload: exit %d, stderr %q", code, v.errOut)
	}
	var doc report.Outcome
	if err := json.Unmarshal(v.out.Bytes(), &doc); err != nil {
		t.Fatalf("unload --json: %v\n%s", err, v.out)
	}
	if doc.SchemaVersion != 2 || doc.Action != "unload" || doc.Result != "removed" || doc.Error != nil || doc.ExitCode != 0 {
		t.Errorf("unload --json = %+v", doc)
	}
	want := []string{"load " + path + " patched", "load " + path + " already loaded", "unload lp_cmdline removed"}
	if strings.Join(v.audit.records, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit records %q, want %q", v.audit.records, want)
	}
}

func TestLoadVerbStallReportAndExitCode(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	path := v.module("lp_busy", "busy_work")
	v.k.BlockTask(15, "busy_work")
	// The fake kernel's retry work switches every other task at 1 and 2 s.
	code := v.run("load", "--timeout", "3s", path)
	if code != ExitStalled {
		t.Fatalf("stalled load: exit %d, want %d; stderr %q", code, ExitStalled, v.errOut)
	}
	out := v.out.String()
	for _, want := range []string{
		"Transition of lp_busy (patching) is blocked by 1 task(s).",
		"15/15 kworker/0:1 (kernel thread",
		"=> ", "on its stack (=>): busy_work",
		"advice: a kernel thread sleeping in code the patch changes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stall report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(v.errOut.String(), "transition stalled") || !strings.Contains(v.errOut.String(), "rolling back") {
		t.Errorf("stderr %q", v.errOut)
	}
	if v.k.Loaded("lp_busy") {
		t.Error("stalled load was not rolled back")
	}
}

func TestBlockingWhy(t *testing.T) {
	// No retry: the kernel has not signalled the task yet.
	v := newVerbEnv(t, fakekernel.Options{AutoTick: noTick})
	path := v.module("lp_busy", "busy_work")
	v.k.BlockTask(200, "busy_work")
	// The fake kernel's retry work switches every other task at 1 and 2 s.
	if code := v.run("load", "--timeout", "3s", "--on-stall", "leave", path); code != ExitStalled {
		t.Fatalf("exit %d; %s", code, v.errOut)
	}
	v.k.Tick() // the other tasks switch
	if code := v.run("blocking", "--why"); code != ExitOK {
		t.Fatalf("blocking --why: exit %d %s", code, v.errOut)
	}
	if !strings.Contains(v.out.String(), "advice: sleeping in code the patch changes: send it SIGSTOP and SIGCONT (kgr poke)") {
		t.Errorf("blocking --why:\n%s", v.out)
	}
	if code := v.run("--json", "blocking", "--why"); code != ExitOK {
		t.Fatal(code)
	}
	var doc struct {
		SchemaVersion int           `json:"schema_version"`
		Stall         *report.Stall `json:"stall"`
	}
	if err := json.Unmarshal(v.out.Bytes(), &doc); err != nil || doc.Stall == nil {
		t.Fatalf("blocking --why --json: %v\n%s", err, v.out)
	}
	if len(doc.Stall.Tasks) != 1 || doc.Stall.Tasks[0].TID != 200 || len(doc.Stall.Tasks[0].Culprits) != 1 {
		t.Errorf("stall JSON %+v", doc.Stall)
	}
	// Another load meets the transition and is refused before the kernel.
	if code := v.run("load", v.module("lp_next", "other")); code != ExitError || !strings.Contains(v.errOut.String(), "lp_busy is patching") {
		t.Errorf("load during a transition: exit %d, %q", code, v.errOut)
	}
	v.k.UnblockTask(200)
	v.k.Tick()
	if code := v.run("wait", "--timeout", "5s"); code != ExitOK {
		t.Errorf("wait: exit %d %s", code, v.errOut)
	}
}

func TestLoadVerbErrors(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	broken := v.module("lp_broken", "gone_function")
	v.k.SetSymbol("vmlinux", "gone_function", 0)
	if code := v.run("load", broken); code != ExitError || !strings.Contains(v.errOut.String(), "gone_function") {
		t.Errorf("broken load: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("load", "/no/such/file.ko"); code != ExitError || !strings.Contains(v.errOut.String(), "/no/such/file.ko") {
		t.Errorf("missing file: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("load", "not-installed"); code != ExitError || !strings.Contains(v.errOut.String(), "not installed") {
		t.Errorf("unknown name: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("unload", "../etc"); code != ExitError || !strings.Contains(v.errOut.String(), "invalid name") {
		t.Errorf("bad name: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("unload"); code != ExitError || !strings.Contains(v.errOut.String(), "--help") {
		t.Errorf("unload without a name: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("load", "--on-stall", "pray", broken); code != ExitError || !strings.Contains(v.errOut.String(), "invalid stall policy") {
		t.Errorf("bad --on-stall: exit %d, stderr %q", code, v.errOut)
	}
	if code := v.run("disable", "lp_none"); code != ExitError || !strings.Contains(v.errOut.String(), "no such patch") {
		t.Errorf("disable unknown: exit %d, stderr %q", code, v.errOut)
	}
}

func TestVerbsWithoutLivepatch(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{NoLivepatch: true})
	if code := v.run("load", v.module("lp", "f")); code != ExitUnsupported {
		t.Errorf("load without livepatch: exit %d, want %d; %s", code, ExitUnsupported, v.errOut)
	}
}

func TestSignalForceVerbs(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	v.k.BlockTask(100)
	if code := v.run("load", "--timeout", "30ms", "--on-stall", "leave", v.module("lp", "f")); code != ExitStalled {
		t.Fatalf("exit %d", code)
	}
	if code := v.run("signal"); code != ExitOK || !strings.Contains(v.errOut.String(), "every 15 seconds") {
		t.Errorf("signal on 6.12: exit %d, %q", code, v.errOut)
	}
	if code := v.run("force", "lp"); code != ExitError || !strings.Contains(v.errOut.String(), "--yes") {
		t.Errorf("force without confirmation: exit %d, %q", code, v.errOut)
	}
	if v.k.TransitionPatch() != "lp" {
		t.Fatal("force without confirmation changed something")
	}
	if code := v.run("force", "--yes", "lp"); code != ExitOK || !strings.Contains(v.out.String(), "forced, patched") {
		t.Errorf("force --yes: exit %d, out %q, err %q", code, v.out, v.errOut)
	}
	// 6.12: a patch forced on stays removable; what it replaces does not.
	if !strings.Contains(v.errOut.String(), "stays removable after a clean disable") {
		t.Errorf("force did not explain its consequences: %q", v.errOut)
	}
}

func TestDisableEnablePre51(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
	if code := v.run("load", v.module("lp", "f")); code != ExitOK {
		t.Fatal(v.errOut)
	}
	if code := v.run("disable", "lp"); code != ExitOK || !strings.Contains(v.out.String(), "lp: unpatched") {
		t.Errorf("disable: exit %d %q %q", code, v.out, v.errOut)
	}
	if code := v.run("enable", "lp"); code != ExitOK || !strings.Contains(v.out.String(), "lp: patched") {
		t.Errorf("enable: exit %d %q %q", code, v.out, v.errOut)
	}
}

func TestInstallListUninstall(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux6_14})
	path := v.module("lp_fix", "cmdline_proc_show")
	if code := v.run("install", path); code != ExitOK || !strings.Contains(v.out.String(), "installed lp_fix for "+fakeRelease) {
		t.Fatalf("install: exit %d %q %q", code, v.out, v.errOut)
	}
	installed := filepath.Join(v.env.Store.Dir, fakeRelease, "lp_fix.ko")
	v.specs[installed] = v.specs[path]
	v.k.AddModuleFile(t, installed, fakekernel.Module{Name: "lp_fix", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}}}}})
	if code := v.run("install", "-k", "6.1.0-1-amd64", path); code != ExitError || !strings.Contains(v.errOut.String(), "built for another kernel") {
		t.Errorf("install for another kernel: exit %d %q", code, v.errOut)
	}
	if code := v.run("load", "lp_fix"); code != ExitOK {
		t.Fatalf("load by name: exit %d %q", code, v.errOut)
	}
	if code := v.run("load", v.module("lp_more", "cmdline_proc_show")); code != ExitOK {
		t.Fatal(v.errOut)
	}
	if code := v.run("list"); code != ExitOK {
		t.Fatalf("list: %d %s", code, v.errOut)
	}
	for _, want := range []string{"lp_fix", "enabled", "(running)", "cmdline_proc_show,1", "lp_more"} {
		if !strings.Contains(v.out.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, v.out)
		}
	}
	if code := v.run("--json", "list"); code != ExitOK {
		t.Fatal(code)
	}
	var doc report.List
	if err := json.Unmarshal(v.out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Functions) != 1 || doc.Functions[0].ProvidedBy == nil || *doc.Functions[0].ProvidedBy != "lp_more" {
		t.Errorf("the later patch (highest stack_order) should provide the function: %+v", doc.Functions)
	}
	if code := v.run("uninstall", "lp_fix"); code != ExitOK {
		t.Errorf("uninstall: exit %d %q", code, v.errOut)
	}
	if code := v.run("uninstall", "lp_fix"); code != ExitError || !strings.Contains(v.errOut.String(), "not installed") {
		t.Errorf("second uninstall: exit %d %q", code, v.errOut)
	}
}

func TestLoadAllVerb(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	if code := v.run("load", "--all"); code != ExitOK || !strings.Contains(v.out.String(), "no patches installed") {
		t.Errorf("load --all with nothing installed: exit %d %q %q", code, v.out, v.errOut)
	}
	if code := v.run("load", "--all", "x.ko"); code != ExitError {
		t.Errorf("load --all with an argument: exit %d", code)
	}
}

func TestMutationsNeedRoot(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	v.env.Geteuid = func() int { return 1000 }
	path := v.module("lp", "f")
	for _, args := range [][]string{{"load", path}, {"unload", "lp"}, {"install", path}, {"uninstall", "lp"}} {
		if code := v.run(args...); code != ExitPermission || !strings.Contains(v.errOut.String(), "needs root") {
			t.Errorf("%v as a user: exit %d, %q; want %d", args, code, v.errOut, ExitPermission)
		}
	}
	if v.k.Loaded("lp") {
		t.Error("loaded without root")
	}
}

func TestLockSerialisesMutations(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	l, err := lock.Acquire(context.Background(), v.env.LockPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	v.env.LockWait = 50 * time.Millisecond
	if code := v.run("load", v.module("lp", "f")); code != ExitError || !strings.Contains(v.errOut.String(), "another klp") {
		t.Errorf("load while locked: exit %d %q", code, v.errOut)
	}
	if v.k.Loaded("lp") {
		t.Error("loaded despite the lock")
	}
}

// TestOutcomeDocuments runs the life-cycle verbs with --json on their
// successful and failing paths; run validates every document against
// docs/schema.
func TestOutcomeDocuments(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	good := v.module("lp_good", "good_func")
	bad := v.module("lp_bad", "bad_func")
	v.k.SetSymbol("vmlinux", "bad_func", 0)
	for _, m := range []struct{ name, path, fn string }{{"lp_good", good, "good_func"}, {"lp_bad", bad, "bad_func"}} {
		if code := v.run("install", m.path); code != ExitOK {
			t.Fatalf("install %s: %d %s", m.path, code, v.errOut)
		}
		// The store's copy is a module file of the fake kernel's too.
		inst := filepath.Join(v.env.Store.Dir, fakeRelease, m.name+".ko")
		v.k.AddModuleFile(t, inst, fakekernel.Module{Name: m.name, Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: m.fn}}}}}})
		v.specs[inst] = v.specs[m.path]
	}
	for _, tc := range []struct {
		args []string
		code ExitCode
	}{
		{[]string{"--json", "wait"}, ExitOK},
		{[]string{"--json", "wait", "nosuch"}, ExitError},
		{[]string{"--json", "load", "--all"}, ExitError},
		{[]string{"--json", "load", good}, ExitOK},
		{[]string{"--json", "disable", "lp-good"}, ExitOK},
		{[]string{"--json", "enable", "lp-good"}, ExitError},
		{[]string{"--json", "signal"}, ExitError},
		{[]string{"--json", "unload", "--all"}, ExitOK},
		{[]string{"--json", "unload", "--all"}, ExitOK},
		{[]string{"--json", "unload", "../x"}, ExitError},
		{[]string{"--json", "load", bad}, ExitError},
	} {
		if code := v.run(tc.args...); code != tc.code {
			t.Errorf("klp %q: exit %d, want %d; stderr %q", tc.args, code, tc.code, v.errOut)
		}
		if v.out.Len() == 0 {
			t.Errorf("klp %q printed no document", tc.args)
		}
	}
	v.env.Geteuid = func() int { return 1000 }
	if code := v.run("--json", "load", good); code != ExitPermission {
		t.Errorf("load as a user: exit %d", code)
	}
}

// TestListInfersOwnerFromLoadOrder: on a kernel without stack_order, two
// patches of one function: list names the newest module's patch and says
// the answer is inferred, in text and JSON.
func TestListInfersOwnerFromLoadOrder(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.Linux6_12})
	for _, name := range []string{"lp_zeta", "lp_alpha"} {
		if code := v.run("load", v.module(name, "cmdline_proc_show")); code != ExitOK {
			t.Fatalf("load %s: %d %s", name, code, v.errOut)
		}
	}
	if code := v.run("list"); code != ExitOK {
		t.Fatalf("list: %d %s", code, v.errOut)
	}
	if want := "lp_alpha (inferred from load order)"; !strings.Contains(v.out.String(), want) {
		t.Errorf("list lacks %q:\n%s", want, v.out)
	}
	if code := v.run("--json", "list"); code != ExitOK {
		t.Fatal(code)
	}
	var doc report.List
	if err := json.Unmarshal(v.out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	f := doc.Functions[0]
	if f.ProvidedBy == nil || *f.ProvidedBy != "lp_alpha" || f.ProvidedByBasis == nil || *f.ProvidedByBasis != "load_order" {
		t.Errorf("functions[0] = %+v, want lp_alpha by load_order", f)
	}
}

// TestListReplaceSets reads the proposed layout: replace_set instead of
// replace, no stack_order.
func TestListReplaceSets(t *testing.T) {
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "replace-set.txtar"))
	var out, errOut bytes.Buffer
	env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Geteuid: func() int { return 0 },
		Store: store.Store{Dir: t.TempDir(), Kpatch: t.TempDir()}}
	roots := []string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}
	if code := Run(append(roots, "list"), env); code != ExitOK {
		t.Fatalf("list: %d %s", code, errOut.String())
	}
	for _, want := range []string{"livepatch_db_tune_1  enabled  set 7", "livepatch_hotfix     enabled  set 0", "livepatch_sle_7_1    enabled  set 1",
		"vmlinux  tcp_sendmsg,1        livepatch_db_tune_1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	args := append(roots, "--json", "list")
	if code := Run(args, env); code != ExitOK {
		t.Fatalf("list --json: %d %s", code, errOut.String())
	}
	if doc, err := schema.ValidateOutput(args[1:], out.Bytes()); err != nil {
		t.Errorf("invalid %s document: %v", doc, err)
	}
	var doc report.List
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, l := range doc.Loaded {
		if l.ReplaceSet == nil || l.Replace != nil || l.StackOrder != nil {
			t.Errorf("loaded %+v: want replace_set only", l)
		}
	}
	for _, f := range doc.Functions {
		if f.ProvidedByBasis == nil || *f.ProvidedByBasis != "only_patch" {
			t.Errorf("function %+v: sets are disjoint, one patch each", f)
		}
	}
}

// suseEnv is a fake SUSE kernel (its support facility present) with
// patch lp loaded.
func suseEnv(t *testing.T) *verbEnv {
	t.Helper()
	f := fakekernel.Linux6_1
	f.SUSESupport = true
	v := newVerbEnv(t, fakekernel.Options{Features: f})
	if code := v.run("load", v.module("lp", "cmdline_proc_show")); code != ExitOK {
		t.Fatalf("load: %d %s", code, v.errOut)
	}
	return v
}

func (v *verbEnv) tainted() bool { return v.k.Tainted()&fakekernel.TaintNoSupport != 0 }

// TestSUSEDisableAsks: on a SUSE kernel disable and unload warn that the
// kernel will be tainted, refuse without a terminal unless --yes, ask on a
// terminal, and change nothing when not confirmed.
func TestSUSEDisableAsks(t *testing.T) {
	for _, verb := range []string{"disable", "unload"} {
		t.Run(verb, func(t *testing.T) {
			v := suseEnv(t)
			// No terminal, no --yes: refused, nothing changed.
			if code := v.run(verb, "lp"); code != ExitError {
				t.Errorf("%s without --yes: exit %d, want 1", verb, code)
			}
			for _, want := range []string{"this is a SUSE kernel (" + filepath.Join(v.k.SysRoot(), "kernel", "supported") + " exists): disabling live patch lp sets the kernel's NO_SUPPORT taint (N)",
				"klp: refusing to " + verb + " lp without confirmation: run on a terminal, or add --yes"} {
				if !strings.Contains(v.errOut.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, v.errOut)
				}
			}
			if v.tainted() || v.k.TransitionPatch() != "" || !v.k.Loaded("lp") || len(v.audit.records) != 1 {
				t.Errorf("refused %s changed something: tainted %v, audit %v", verb, v.tainted(), v.audit.records)
			}
			// --json too: the error document, nothing changed.
			if code := v.run("--json", verb, "lp"); code != ExitError || !strings.Contains(v.out.String(), "--yes") || v.tainted() {
				t.Errorf("%s --json without --yes: exit %d %q", verb, code, v.out)
			}
			// A terminal that answers no: nothing changed.
			v.env.IO.InTTY, v.env.IO.In = true, strings.NewReader("n\n")
			if code := v.run(verb, "lp"); code != ExitError || !strings.Contains(v.errOut.String(), "Disable it anyway? [y/N]") || v.tainted() {
				t.Errorf("%s answered no: exit %d %q", verb, code, v.errOut)
			}
			// Yes: done, and the kernel is tainted as it warned.
			v.env.IO.In = strings.NewReader("y\n")
			if code := v.run(verb, "lp"); code != ExitOK {
				t.Fatalf("%s answered yes: exit %d %q", verb, code, v.errOut)
			}
			if !v.tainted() || !strings.Contains(v.errOut.String(), "the kernel's NO_SUPPORT taint (N) is set") {
				t.Errorf("after %s: tainted %v, stderr %q", verb, v.tainted(), v.errOut)
			}
		})
	}
}

func TestSUSEDisableYes(t *testing.T) {
	v := suseEnv(t)
	if code := v.run("unload", "--all", "--yes"); code != ExitOK {
		t.Fatalf("unload --all --yes: %d %s", code, v.errOut)
	}
	if !v.tainted() || v.k.Loaded("lp") || !strings.Contains(v.errOut.String(), "NO_SUPPORT") {
		t.Errorf("unload --all --yes: tainted %v, loaded %v, %q", v.tainted(), v.k.Loaded("lp"), v.errOut)
	}
	// disable --yes: warned, not asked, done.
	v = suseEnv(t)
	if code := v.run("disable", "--yes", "lp"); code != ExitOK {
		t.Fatalf("disable --yes: %d %s", code, v.errOut)
	}
	if !v.tainted() || strings.Contains(v.errOut.String(), "[y/N]") || !strings.Contains(v.errOut.String(), "NO_SUPPORT") {
		t.Errorf("disable --yes: tainted %v, %q", v.tainted(), v.errOut)
	}
}

// TestSUSEUnloadAllAsks: unload --all asks once, before anything, about
// every patch it would disable.
func TestSUSEUnloadAllAsks(t *testing.T) {
	v := suseEnv(t)
	if code := v.run("unload", "--all"); code != ExitError || !strings.Contains(v.errOut.String(), "refusing to unload lp without confirmation") || !v.k.Loaded("lp") {
		t.Errorf("unload --all: exit %d %q", code, v.errOut)
	}
}

// TestSUSENoQuestionWithoutDisable: removing a module that a replace left
// loaded, or reversing a patching transition, disables nothing that taints:
// no question.
func TestSUSENoQuestionWithoutDisable(t *testing.T) {
	f := fakekernel.Linux6_1
	f.SUSESupport = true
	v := newVerbEnv(t, fakekernel.Options{Features: f})
	if code := v.run("load", v.module("old", "cmdline_proc_show")); code != ExitOK {
		t.Fatal(v.errOut)
	}
	path := v.k.AddModule(t, fakekernel.Module{Name: "cumulative", Livepatch: &fakekernel.Patch{Replace: true,
		Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}}}}})
	v.specs[path] = &modinfo.Module{Name: "cumulative", Livepatch: true, Vermagic: fakeRelease + " SMP preempt mod_unload "}
	if code := v.run("load", path); code != ExitOK {
		t.Fatal(v.errOut)
	}
	if code := v.run("unload", "old"); code != ExitOK || strings.Contains(v.errOut.String(), "SUSE") || v.tainted() {
		t.Errorf("unload of a superseded module: exit %d %q, tainted %v", code, v.errOut, v.tainted())
	}
}

// TestNoQuestionElsewhere: on other kernels nothing is asked.
func TestNoQuestionElsewhere(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	if code := v.run("load", v.module("lp", "cmdline_proc_show")); code != ExitOK {
		t.Fatal(v.errOut)
	}
	if code := v.run("disable", "lp"); code != ExitOK || strings.Contains(v.errOut.String(), "SUSE") {
		t.Errorf("disable: exit %d %q", code, v.errOut)
	}
}

// TestPreflightReplaceSetClash: on a kernel with replace sets (the
// proposal, in the fake kernel), preflight fails a patch of another set that
// changes a function a loaded patch changes, says the kernel refuses it,
// and the kernel does refuse the load; a patch of the same set passes and
// replaces the loaded one.
func TestPreflightReplaceSetClash(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{Features: fakekernel.ProposedReplaceSet})
	setModule := func(name string, set uint32, fn string) string {
		v.k.SetSymbol("vmlinux", fn, 1)
		path := v.k.AddModule(t, fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{ReplaceSet: set,
			Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: fn}}}}}})
		replace := set != 0
		v.specs[path] = &modinfo.Module{Name: name, Livepatch: true, Vermagic: fakeRelease + " SMP preempt mod_unload ",
			Targets: &modinfo.Targets{Functions: []modinfo.Target{{Object: "vmlinux", Function: fn}}, Replace: &replace, ReplaceSet: &set, States: []modinfo.KlpState{}}}
		return path
	}
	if code := v.run("load", setModule("vendor_1", 1, "cmdline_proc_show")); code != ExitOK {
		t.Fatalf("load vendor_1: %d %s", code, v.errOut)
	}
	other := setModule("db_1", 2, "cmdline_proc_show")
	if code := v.run("preflight", other); code == ExitOK ||
		!strings.Contains(v.out.String(), "replace set 2: the kernel refuses the load") || !strings.Contains(v.out.String(), "vendor_1") {
		t.Errorf("preflight of another set's clash: exit %d\n%s%s", code, v.out, v.errOut)
	}
	if code := v.run("load", other); code == ExitOK || v.k.Loaded("db_1") {
		t.Errorf("load of another set's clash: exit %d, loaded %v", code, v.k.Loaded("db_1"))
	}
	same := setModule("vendor_2", 1, "cmdline_proc_show")
	if code := v.run("preflight", same); code != ExitOK || !strings.Contains(v.out.String(), "replace set 1: it replaces vendor_1 and patches every function they patch") {
		t.Errorf("preflight of the same set: exit %d\n%s%s", code, v.out, v.errOut)
	}
}

// -v says how a wait went: that it slept on the kernel log, and what made it
// notice the end; without the log, why it polled.
func TestWaitVerbose(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	path := v.module("lp_cmdline", "cmdline_proc_show")
	if code := v.run("-v", "load", path); code != ExitOK {
		t.Fatalf("load: exit %d, stderr %q", code, v.errOut)
	}
	if !strings.Contains(v.errOut.String(), "klp: wait for lp_cmdline: the transition ended after ") || strings.Contains(v.errOut.String(), "polled") {
		t.Errorf("load -v stderr %q: want the end of the wait, no polling", v.errOut)
	}
	v.k.InjectLogOpenFault(syscall.EPERM)
	if code := v.run("-v", "unload", "lp_cmdline"); code != ExitOK {
		t.Fatalf("unload: exit %d, stderr %q", code, v.errOut)
	}
	if !strings.Contains(v.errOut.String(), "polled the transition attribute (the kernel log could not be watched: kernel log unavailable: open ") {
		t.Errorf("unload -v stderr %q: want the reason for polling", v.errOut)
	}
	// Without -v, nothing of it.
	if code := v.run("load", path); code != ExitOK || strings.Contains(v.errOut.String(), "wait for") {
		t.Errorf("load: exit %d, stderr %q", code, v.errOut)
	}
}
