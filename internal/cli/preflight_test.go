package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
)

// pfDelete, as an edit to pfTree, removes the file or directory.
const pfDelete = "\x00delete"

// pfTree writes a healthy 6.1 system (live patching, ftrace on, no
// lockdown, signatures not enforced, nothing loaded) into a temporary
// directory, with files replaced or added from edits. A name ending in "/"
// is a directory.
func pfTree(t *testing.T, edits map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"sys/kernel/livepatch/":                         "",
		"sys/kernel/security/lockdown":                  "[none] integrity confidentiality\n",
		"sys/module/module/parameters/sig_enforce":      "N\n",
		"proc/sys/kernel/osrelease":                     pfRelease + "\n",
		"proc/sys/kernel/ftrace_enabled":                "1\n",
		"proc/sys/kernel/modules_disabled":              "0\n",
		"proc/sys/kernel/tainted":                       "0\n",
		"proc/modules":                                  "",
		"proc/kallsyms":                                 "0000000000000000 t cmdline_proc_show\n0000000000000000 t version_proc_show\n0000000000000000 t version_proc_show\n",
		"boot/config-" + pfRelease:                      "CONFIG_X86_64=y\nCONFIG_LIVEPATCH=y\nCONFIG_HAVE_RELIABLE_STACKTRACE=y\nCONFIG_STACKTRACE=y\n",
		"sys/kernel/tracing/available_filter_functions": "cmdline_proc_show\nversion_proc_show\n",
		"sys/kernel/tracing/enabled_functions":          "",
		"sys/kernel/debug/kprobes/list":                 "",
	}
	for k, v := range edits {
		files[k] = v
	}
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		switch {
		case content == pfDelete:
			continue
		case strings.HasSuffix(name, "/"):
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

func TestPreflightText(t *testing.T) {
	root := pfTree(t, nil)
	mod := filepath.Join(pfModules, "klp_vmlinux.ko")
	out, errOut, code := pfRun(t, root, nil, "preflight", mod)
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "klp_vmlinux: "+mod {
		t.Errorf("first line %q", lines[0])
	}
	for _, want := range []string{
		"PASS  Live patching support: " + filepath.Join(root, "sys/kernel/livepatch") + " exists",
		"WARN  Module signatures: the module is unsigned: the kernel loads it but taints itself (E, \"module verification failed: signature and/or required key missing\")",
		"      fix: sign the module with a key the kernel trusts to avoid the taint",
		"PASS  Target symbols: all 2 symbols resolve as the kernel will look them up",
		"PASS  Silent overrides: no BPF program or other user would override the replaced functions (BPF programs not listed: list BPF programs: not the running kernel)",
		"result: warn (0 failed, 1 warned, 0 skipped, 17 passed)",
	} {
		if !contains(lines, want) {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "PASS  ") && !strings.HasPrefix(l, "WARN  ") && !strings.HasPrefix(l, "      fix: ") {
			t.Errorf("unexpected line %q", l)
		}
		if strings.Contains(l, "\033") {
			t.Errorf("colour on a pipe: %q", l)
		}
	}
	if strings.Contains(out, "      - ") {
		t.Error("details without -v")
	}

	out, _, _ = pfRun(t, root, nil, "preflight", "-v", mod)
	if !strings.Contains(out, "\n      - function version_proc_show,2 in vmlinux: found (2 occurrences)\n") {
		t.Errorf("-v lacks the details:\n%s", out)
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestPreflightFails(t *testing.T) {
	root := pfTree(t, map[string]string{"proc/sys/kernel/ftrace_enabled": "0\n"})
	out, errOut, code := pfRun(t, root, nil, "preflight")
	if code != ExitError || errOut != "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"\nFAIL  ftrace: kernel.ftrace_enabled is 0: the kernel cannot register the patch's ftrace handlers and refuses the load (EBUSY)\n      fix: sysctl kernel.ftrace_enabled=1\n",
		"\nresult: fail (1 failed, 0 warned, 0 skipped, 8 passed)\n",
	} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.HasPrefix(out, "klp_") {
		t.Errorf("a module header without a module:\n%s", out)
	}
}

func TestPreflightTTYColour(t *testing.T) {
	root := pfTree(t, nil)
	var out strings.Builder
	env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out, OutTTY: true}, BootDir: filepath.Join(root, "boot")}
	Run([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "preflight"}, env)
	if !strings.Contains(out.String(), "\033[32mPASS\033[0m  Live patching support") {
		t.Errorf("no colour on a terminal:\n%q", out.String())
	}
}

func TestPreflightJSON(t *testing.T) {
	root := pfTree(t, map[string]string{"sys/module/module/parameters/sig_enforce": "Y\n"})
	var doc struct {
		SchemaVersion int                        `json:"schema_version"`
		Module        *map[string]any            `json:"module"`
		Checks        []map[string]any           `json:"checks"`
		Result        string                     `json:"result"`
		Extra         map[string]json.RawMessage `json:"-"`
	}
	out, errOut, code := pfRun(t, root, nil, "preflight", "--json")
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != 1 || doc.Module != nil || doc.Result != "pass" || len(doc.Checks) != len(preflight.IDs(false, false)) {
		t.Errorf("document %+v", doc)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal([]byte(out), &raw)
	if string(raw["module"]) != "null" {
		t.Errorf("module %s, want null", raw["module"])
	}
	for i, c := range doc.Checks {
		if c["id"] != preflight.IDs(false, false)[i] || c["fix"] != nil || c["details"] == nil || c["title"] == "" {
			t.Errorf("check %v", c)
		}
	}

	// With a module, an unsigned module under enforcement fails.
	mod := filepath.Join(pfModules, "klp_vmlinux.ko")
	out, errOut, code = pfRun(t, root, nil, "preflight", "--json", mod)
	if code != ExitError || errOut != "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	doc.Module, doc.Checks = nil, nil
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	m := *doc.Module
	if doc.Result != "fail" || m["file"] != mod || m["name"] != "klp_vmlinux" || m["signed"] != false || m["replace"] != false || len(m["functions"].([]any)) != 2 {
		t.Errorf("document %+v", doc)
	}
	for _, c := range doc.Checks {
		if c["id"] == preflight.IDSigEnforce {
			if c["status"] != "fail" || c["fix"] == nil || !strings.Contains(c["reason"].(string), "EKEYREJECTED") {
				t.Errorf("sig_enforce %v", c)
			}
		}
	}
}

func TestPreflightErrors(t *testing.T) {
	root := pfTree(t, nil)
	_, errOut, code := pfRun(t, root, nil, "--sysfs", filepath.Join(root, "nope"), "preflight")
	if code != ExitError || !strings.Contains(errOut, "nope") {
		t.Errorf("bad root: exit %d, stderr %q", code, errOut)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ko")
	os.WriteFile(bad, []byte("not a module"), 0o644)
	out, errOut, code := pfRun(t, root, nil, "preflight", bad)
	if code != ExitError || out != "" || !strings.HasPrefix(errOut, "klp: preflight: ") || !strings.Contains(errOut, "not an ELF file") {
		t.Errorf("bad module: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = pfRun(t, root, nil, "preflight", "a.ko", "b.ko")
	if code != ExitError || !strings.Contains(errOut, "Run 'klp --help'") {
		t.Errorf("two modules: exit %d, stderr %q", code, errOut)
	}
	// A non-livepatch module is a failed check, not an error.
	out, _, code = pfRun(t, root, nil, "preflight", filepath.Join(pfModules, "klp_target.ko"))
	if code != ExitError || !strings.Contains(out, "FAIL  Livepatch module: klp_target is not a livepatch module") {
		t.Errorf("non-livepatch: exit %d:\n%s", code, out)
	}
}

// fakeSyscalls records module loads; the kernel answers EBUSY, so that
// klp load stops right after the syscall.
type fakeSyscalls struct {
	mu    sync.Mutex
	finit int
}

func (f *fakeSyscalls) FinitModule(fd int, params string, flags int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finit++
	return unix.EBUSY
}

func (f *fakeSyscalls) InitModule(image []byte, params string) error { return unix.ENOSYS }

func (f *fakeSyscalls) DeleteModule(name string, flags int) error { return unix.ENOENT }

func (f *fakeSyscalls) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finit
}

// noKmsg is a kernel log with nothing in it.
type noKmsg struct{}

func (noKmsg) OpenKmsg() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }

func pfLoadEnv(t *testing.T, sc *fakeSyscalls) *Env {
	dir := t.TempDir()
	return &Env{
		OpenLive: fakefs.OpenLive(kernel.Seams{Modules: sc}),
		Kmod:     kmod.Options{Kmsg: noKmsg{}},
		LockPath: filepath.Join(dir, "lock"),
		LockWait: time.Second,
	}
}

func TestLoadPreflight(t *testing.T) {
	mod := filepath.Join(pfModules, "klp_vmlinux.ko")
	for _, tc := range []struct {
		name    string
		edits   map[string]string
		args    []string
		refused bool
		code    ExitCode
		stderr  []string
	}{
		{name: "healthy", code: ExitError, stderr: []string{"busy"}},
		{name: "ftrace off", edits: map[string]string{"proc/sys/kernel/ftrace_enabled": "0\n"}, refused: true, code: ExitError,
			stderr: []string{
				"klp: preflight: FAIL  ftrace: kernel.ftrace_enabled is 0",
				"klp: preflight:   fix: sysctl kernel.ftrace_enabled=1",
				"klp: load klp_vmlinux refused: 1 preflight check(s) failed (--skip-preflight loads anyway)",
			}},
		{name: "ftrace off, skipped", edits: map[string]string{"proc/sys/kernel/ftrace_enabled": "0\n"}, args: []string{"--skip-preflight"}, code: ExitError, stderr: []string{"busy"}},
		{name: "signatures enforced", edits: map[string]string{"sys/module/module/parameters/sig_enforce": "Y\n"}, refused: true, code: ExitPermission,
			stderr: []string{"FAIL  Module signatures: signatures are enforced and the module is unsigned"}},
		{name: "ftrace off and signatures enforced", edits: map[string]string{"proc/sys/kernel/ftrace_enabled": "0\n", "sys/module/module/parameters/sig_enforce": "Y\n"}, refused: true, code: ExitPermission,
			stderr: []string{"2 preflight check(s) failed"}},
		{name: "no live patching", edits: map[string]string{"sys/kernel/livepatch/": pfDelete}, refused: true, code: ExitUnsupported},
		{name: "transition", edits: map[string]string{"sys/kernel/livepatch/p1/enabled": "1\n", "sys/kernel/livepatch/p1/transition": "1\n"}, refused: true, code: ExitError,
			stderr: []string{"FAIL  Transition in progress: patch p1 is patching"}},
		{name: "warnings with -v", args: []string{"-v"}, code: ExitError,
			stderr: []string{"klp: preflight: WARN  Module signatures: the module is unsigned"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := pfTree(t, tc.edits)
			sc := &fakeSyscalls{}
			args := append([]string{"load", "--timeout", "1s"}, tc.args...)
			_, errOut, code := pfRun(t, root, pfLoadEnv(t, sc), append(args, mod)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errOut)
			}
			if got := sc.calls() == 0; got != tc.refused {
				t.Errorf("finit_module called %d times, refused %v", sc.calls(), tc.refused)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if !tc.refused && strings.Contains(errOut, "refused") {
				t.Errorf("refused: %s", errOut)
			}
		})
	}
}

// TestLoadPreflightNotRoot: without root, preflight leaves the refusal to
// the root check of the life-cycle commands (exit 5), whatever the checks
// would say.
func TestLoadPreflightNotRoot(t *testing.T) {
	root := pfTree(t, map[string]string{"proc/sys/kernel/ftrace_enabled": "0\n"})
	sc := &fakeSyscalls{}
	env := pfLoadEnv(t, sc)
	env.Geteuid = func() int { return 1000 }
	_, errOut, code := pfRun(t, root, env, "load", filepath.Join(pfModules, "klp_vmlinux.ko"))
	if code == ExitOK || strings.Contains(errOut, "preflight") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestLoadPreflightJSON(t *testing.T) {
	root := pfTree(t, map[string]string{"proc/sys/kernel/modules_disabled": "1\n"})
	sc := &fakeSyscalls{}
	mod := filepath.Join(pfModules, "klp_vmlinux.ko")
	out, errOut, code := pfRun(t, root, pfLoadEnv(t, sc), "load", "--json", mod)
	if code != ExitPermission || sc.calls() != 0 {
		t.Errorf("exit %d, %d loads; stderr %q", code, sc.calls(), errOut)
	}
	var doc struct {
		SchemaVersion int    `json:"schema_version"`
		Action        string `json:"action"`
		Patch         string `json:"patch"`
		File          string `json:"file"`
		Result        string `json:"result"`
		Error         string `json:"error"`
		ExitCode      int    `json:"exit_code"`
		Preflight     []struct {
			ID     string  `json:"id"`
			Status string  `json:"status"`
			Fix    *string `json:"fix"`
		} `json:"preflight"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.SchemaVersion != 2 || doc.Action != "load" || doc.Patch != "klp_vmlinux" || doc.File != mod || doc.Result != "refused" ||
		doc.ExitCode != int(ExitPermission) || !strings.Contains(doc.Error, "refused") {
		t.Errorf("document %+v", doc)
	}
	if len(doc.Preflight) != len(preflight.IDs(true, true)) {
		t.Errorf("%d checks, want the %d cheap ones", len(doc.Preflight), len(preflight.IDs(true, true)))
	}
	for _, c := range doc.Preflight {
		if c.ID == preflight.IDModulesDisabled && (c.Status != "fail" || c.Fix == nil) {
			t.Errorf("modules_disabled %+v", c)
		}
	}
}
