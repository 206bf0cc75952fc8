package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/modinfo"
)

// pfModules is modinfo's directory of real test modules.
var pfModules = filepath.Join("..", "..", "modinfo", "testdata")

const pfRelease = "6.1.0-56-cloud-amd64" // the release they were built for

// pfRun runs klp with the fake system at root (from pfTree; "" for none)
// and returns its output and exit status.
func pfRun(t *testing.T, root string, env *Env, args ...string) (stdout, stderr string, code ExitCode) {
	t.Helper()
	var out, errOut bytes.Buffer
	if env == nil {
		env = &Env{}
	}
	env.IO = &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	argv := []string{"klp"}
	if root != "" {
		argv = append(argv, "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"))
		if env.BootDir == "" {
			env.BootDir = filepath.Join(root, "boot")
		}
	}
	code = Run(append(argv, args...), env)
	return out.String(), errOut.String(), code
}

func TestInfoText(t *testing.T) {
	out, errOut, code := pfRun(t, "", nil, "info", filepath.Join(pfModules, "klp_vmlinux.ko.xz"))
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := `name:        klp_vmlinux (from .gnu.linkonce.this_module, as the kernel reads it)
file:        ` + filepath.Join(pfModules, "klp_vmlinux.ko.xz") + `
compression: xz (7672 bytes decompressed)
machine:     x86_64 (ELF64, little-endian)
livepatch:   yes
vermagic:    6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions
signature:   none (unsigned)
modinfo:
  livepatch    Y
  description  klp test fixture: vmlinux livepatch
  author       klp project
  license      GPL
  depends
  retpoline    Y
  name         klp_vmlinux
  vermagic     6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions
targets:
  atomic replace: no (as initialised in the file; a module may change it in its init function)
  objects: vmlinux
  OBJECT   FUNCTION             SOURCE
  vmlinux  cmdline_proc_show,1  klp_func
  vmlinux  version_proc_show,2  klp_func
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("klp info (-want +got):\n%s", diff)
	}
}

func TestInfoTextVariants(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"klp_replace.ko", []string{
			`signature:   pkcs7, signer "klp test signing key", key 0C:DF:9A:10:39:79:E8:D4:65:2E:58:7D:EC:62:59:B6:46:40:84:B5, sha256 with rsa, 432 bytes`,
			"  atomic replace: yes (as initialised in the file; a module may change it in its init function)",
		}},
		{"klp_twoobj.ko", []string{
			"  objects: vmlinux, klp_target",
			"  vmlinux     meminfo_proc_show,1  klp_func",
			"  klp_target  klp_target_value,1   klp_func",
		}},
		{"klp_klpsym.ko", []string{
			"  klp symbols (resolved by the kernel when the object is loaded):\n    vmlinux  klp_static_helper,2",
			"    .klp.rela.vmlinux..text.klp_klpsym_cmdline_show -> .text.klp_klpsym_cmdline_show (1)",
		}},
		{"klp_target.ko", []string{
			"livepatch:   no",
			"  parm         answer:value returned by klp_target_value",
			"targets: none (not a livepatch module)",
		}},
	} {
		out, errOut, code := pfRun(t, "", nil, "info", filepath.Join(pfModules, tc.file))
		if code != ExitOK || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q", tc.file, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%s: output lacks %q:\n%s", tc.file, w, out)
			}
		}
	}
}

// TestInfoJSON checks that klp info --json is the modinfo.Module of
// modinfo's golden files plus schema_version and file.
func TestInfoJSON(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join(pfModules, "golden", "*.json"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, g := range goldens {
		file := filepath.Join(pfModules, strings.TrimSuffix(filepath.Base(g), ".json"))
		out, errOut, code := pfRun(t, "", nil, "info", "--json", file)
		if code != ExitOK || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q", file, code, errOut)
			continue
		}
		var got, want map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %v\n%s", file, err, out)
		}
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got["schema_version"] != float64(report.Version) || got["file"] != file {
			t.Errorf("%s: schema_version %v, file %v", file, got["schema_version"], got["file"])
		}
		delete(got, "schema_version")
		delete(got, "file")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-golden +got):\n%s", file, diff)
		}
	}
}

func TestInfoErrors(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile(filepath.Join(pfModules, "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	class32 := bytes.Clone(orig)
	class32[4] = 1 // EI_CLASS = ELFCLASS32
	for _, tc := range []struct {
		path, want string
	}{
		{write("truncated.ko", orig[:3000]), "truncated file"},
		{write("text.ko", []byte("hello, world\n")), "not an ELF file"},
		{write("empty.ko", nil), "not an ELF file"},
		{write("elf32.ko", class32), "unsupported ELF class"},
		{filepath.Join(dir, "missing.ko"), "no such file or directory"},
		{dir + "/", "is a directory"},
	} {
		out, errOut, code := pfRun(t, "", nil, "info", tc.path)
		if code != ExitError || out != "" {
			t.Errorf("%s: exit %d, stdout %q", tc.path, code, out)
		}
		if !strings.HasPrefix(errOut, "klp: info: ") || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: stderr %q, want one line with %q", tc.path, errOut, tc.want)
		}
	}
}

// TestInfoName resolves a bare name among the patches installed for the
// running kernel, as klp load does.
func TestInfoName(t *testing.T) {
	root := pfTree(t, nil)
	storeDir := t.TempDir()
	inst := filepath.Join(storeDir, pfRelease, "klp_vmlinux.ko")
	b, err := os.ReadFile(filepath.Join(pfModules, "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(inst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	env := &Env{Store: store.Store{Dir: storeDir}}
	out, errOut, code := pfRun(t, root, env, "info", "klp_vmlinux")
	if code != ExitOK || !strings.Contains(out, "file:        "+inst+"\n") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	_, errOut, code = pfRun(t, root, &Env{Store: store.Store{Dir: storeDir}}, "info", "klp_other")
	if code != ExitError || !strings.Contains(errOut, "klp_other") {
		t.Errorf("unknown name: exit %d, stderr %q", code, errOut)
	}
}

// TestInfoEscapes checks that text from the file cannot send escape
// sequences to the terminal.
func TestInfoEscapes(t *testing.T) {
	env := &Env{Inspect: func(path string) (*modinfo.Module, error) {
		m, err := modinfo.Open(path)
		if err != nil {
			return nil, err
		}
		m.Info = append(m.Info, modinfo.KeyValue{Key: "description", Value: "\x1b[2Jgone"})
		m.Name = "evil\x07"
		return m, nil
	}}
	out, _, code := pfRun(t, "", env, "info", filepath.Join(pfModules, "klp_vmlinux.ko"))
	if code != ExitOK || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b[2Jgone`) || !strings.Contains(out, `evil\a`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestPrintTargetsReplaceSet: a replace word above 1 can only be the
// proposed replace_set; the klp_state entries are listed.
func TestPrintTargetsReplaceSet(t *testing.T) {
	yes, seven, one := true, uint32(7), uint32(1)
	for _, tc := range []struct {
		name string
		t    modinfo.Targets
		want []string
		not  []string
	}{
		{"set 7", modinfo.Targets{Replace: &yes, ReplaceSet: &seven, States: []modinfo.KlpState{{ID: 1511, Version: 2}, {ID: 9, Version: 1}}},
			[]string{"atomic replace: replace set 7 (as initialised in the file", "system states: 1511 (version 2), 9 (version 1)"}, nil},
		{"a bool", modinfo.Targets{Replace: &yes, ReplaceSet: &one, States: []modinfo.KlpState{}},
			[]string{"atomic replace: yes (as initialised in the file"}, []string{"replace set", "system states"}},
		{"unknown", modinfo.Targets{}, []string{"atomic replace: undetermined"}, []string{"system states"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printTargets(&b, &modinfo.Module{Targets: &tc.t})
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("has %q:\n%s", n, b.String())
				}
			}
		})
	}
}
