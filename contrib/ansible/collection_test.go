// Package ansible_test runs the klp Ansible collection (this directory) with
// Debian's ansible-core against the real klp binary over fixture trees
// (testdata/*.txtar): the modules' documentation, reads, planning, check and
// diff mode, and klp's refusals and error documents. What changes a kernel is
// tested on real kernels (e2e, TestDebian's ansible scenario).
package ansible_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klp-project/klp/internal/fakefs"
)

// ansible finds an Ansible tool, or skips: make test installs ansible-core
// (make deps-ansible); a plain go test on a machine without it has nothing
// to run the collection with.
func ansible(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed (make deps-ansible installs Debian's ansible-core)", tool)
	}
	return path
}

// collections makes an ANSIBLE_COLLECTIONS_PATH in which
// ansible_collections/klp_project/klp is this directory.
func collections(t *testing.T) string {
	t.Helper()
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ns := filepath.Join(dir, "ansible_collections", "klp_project")
	if err := os.MkdirAll(ns, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(here, filepath.Join(ns, "klp")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ansibleEnv is the environment of an Ansible run: this collection, and
// Ansible's temporary files and settings kept out of $HOME.
func ansibleEnv(t *testing.T) []string {
	tmp := t.TempDir()
	return append(os.Environ(),
		"ANSIBLE_COLLECTIONS_PATH="+collections(t),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"),
		"ANSIBLE_REMOTE_TMP="+filepath.Join(tmp, "remote"),
		"ANSIBLE_HOME="+filepath.Join(tmp, "home"),
		"ANSIBLE_CONFIG="+filepath.Join(tmp, "none.cfg"),
		"ANSIBLE_LOCALHOST_WARNING=false",
		"ANSIBLE_INVENTORY_UNPARSED_WARNING=false",
		"ANSIBLE_NOCOLOR=1",
		"LC_ALL=C.UTF-8",
	)
}

func buildKlp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "klp")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/klp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build klp: %v\n%s", err, out)
	}
	return bin
}

// TestDocs: ansible-doc renders each module, with the options and return
// values the modules take and give.
func TestDocs(t *testing.T) {
	doc := ansible(t, "ansible-doc")
	cmd := exec.Command(doc, "--json", "klp_project.klp.patch", "klp_project.klp.patch_info")
	cmd.Env = ansibleEnv(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ansible-doc: %v\n%s", err, stderrOf(err))
	}
	var docs map[string]struct {
		Doc struct {
			Module  string                     `json:"module"`
			Options map[string]json.RawMessage `json:"options"`
		} `json:"doc"`
		Examples string                     `json:"examples"`
		Return   map[string]json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatalf("ansible-doc --json: %v", err)
	}
	want := map[string]struct{ options, returns []string }{
		"klp_project.klp.patch": {
			options: []string{"klp_path", "name", "on_stall", "preflight", "procfs", "remote_src", "src", "state", "sysfs", "wait"},
			returns: []string{"actions", "after", "before", "failed_checks", "outcome", "outcomes", "patch", "preflight", "stall"},
		},
		"klp_project.klp.patch_info": {
			options: []string{"klp_path", "procfs", "sysfs"},
			returns: []string{"blocking", "drift", "installed", "list", "patches", "ready", "stall", "status", "transition", "version"},
		},
	}
	for name, w := range want {
		d, ok := docs[name]
		if !ok {
			t.Errorf("ansible-doc did not render %s", name)
			continue
		}
		if diff := cmp.Diff(w.options, keys(d.Doc.Options)); diff != "" {
			t.Errorf("%s options (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff(w.returns, keys(d.Return)); diff != "" {
			t.Errorf("%s return values (-want +got):\n%s", name, diff)
		}
		if !strings.Contains(d.Examples, name+":") {
			t.Errorf("%s: the examples do not use the module:\n%s", name, d.Examples)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// result is the part of a module's result the test reads.
type result struct {
	Failed       bool            `json:"failed"`
	Changed      bool            `json:"changed"`
	Msg          string          `json:"msg"`
	Patch        string          `json:"patch"`
	Actions      []string        `json:"actions"`
	Before       *state          `json:"before"`
	After        *state          `json:"after"`
	Diff         json.RawMessage `json:"diff"`
	FailedChecks []string        `json:"failed_checks"`
	Preflight    *struct {
		Result string `json:"result"`
	} `json:"preflight"`
	Outcome  json.RawMessage `json:"outcome"`
	Document *struct {
		SchemaVersion int    `json:"schema_version"`
		Error         string `json:"error"`
		ExitCode      int    `json:"exit_code"`
	} `json:"document"`
	RC int `json:"rc"`

	// patch_info
	Ready      bool   `json:"ready"`
	Version    string `json:"version"`
	Transition *struct {
		Patch  string `json:"patch"`
		Target string `json:"target"`
	} `json:"transition"`
	Status *struct {
		Status    string `json:"status"`
		Interface string `json:"interface"`
	} `json:"status"`
	Patches []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"patches"`
	Blocking []struct {
		TID      int      `json:"tid"`
		Comm     string   `json:"comm"`
		Culprits []string `json:"culprits"`
	} `json:"blocking"`
	Drift *struct {
		NotLoaded    []string `json:"not_loaded"`
		NotInstalled []string `json:"not_installed"`
	} `json:"drift"`
}

type state struct {
	State     string `json:"state"`
	Installed bool   `json:"installed"`
}

// TestFixtures runs tests/playbooks/fixtures.yml with ansible-playbook on
// localhost and checks every task's result.
func TestFixtures(t *testing.T) {
	playbook := ansible(t, "ansible-playbook")
	klp := buildKlp(t)
	blocking := fakefs.Load(t, "../../testdata/transition-blocking.txtar")
	steady := fakefs.Load(t, "../../testdata/kernel-6.1.txtar")
	none := fakefs.Load(t, "../../testdata/no-livepatch.txtar")
	moduleFile, err := filepath.Abs("../../modinfo/testdata/klp_vmlinux.ko")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	notModule := filepath.Join(work, "garbage.ko")
	if err := os.WriteFile(notModule, []byte("not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(work, "results.json")
	vars, err := json.Marshal(map[string]string{
		"ansible_python_interpreter": "/usr/bin/python3",
		"klp":                        klp,
		"blocking":                   blocking,
		"steady":                     steady,
		"none":                       none,
		"module_file":                moduleFile,
		"not_a_module":               notModule,
		"results":                    results,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(playbook, "-i", "localhost,", "-c", "local", "-e", string(vars), "tests/playbooks/fixtures.yml")
	cmd.Env = ansibleEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook: %v\n%s", err, out)
	}
	data, err := os.ReadFile(results)
	if err != nil {
		t.Fatalf("read the playbook's results: %v\n%s", err, out)
	}
	var got map[string]result
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	check := func(name string, f func(r result) []string) {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s: no result", name)
			return
		}
		for _, problem := range f(r) {
			t.Errorf("%s: %s (msg %q)", name, problem, r.Msg)
		}
	}
	expect := func(cond bool, problem string) []string {
		if cond {
			return nil
		}
		return []string{problem}
	}
	join := func(lists ...[]string) []string {
		var all []string
		for _, l := range lists {
			all = append(all, l...)
		}
		return all
	}

	check("info_blocking", func(r result) []string {
		var comms []string
		culprits := 0
		for _, b := range r.Blocking {
			comms = append(comms, b.Comm)
			culprits += len(b.Culprits)
		}
		states := map[string]string{}
		for _, p := range r.Patches {
			states[p.Name] = p.State
		}
		return join(
			expect(!r.Failed && !r.Changed, "failed or changed"),
			expect(!r.Ready, "ready during a transition"),
			expect(r.Transition != nil && r.Transition.Patch == "livepatch_2_160000_1_1" && r.Transition.Target == "patched",
				"transition is not livepatch_2_160000_1_1 patching"),
			expect(slices.Contains(comms, "in:imjournal") && slices.Contains(comms, "nfsd"),
				"blocking tasks: "+strings.Join(comms, ",")),
			expect(culprits > 0, "no culprit frame among the blocking tasks"),
			expect(cmp.Equal(states, map[string]string{"livepatch_1_160000_1_1": "enabled", "livepatch_2_160000_1_1": "patching"}),
				"patch states: "+fmt.Sprint(states)),
			expect(r.Version != "", "no klp version"),
		)
	})
	check("info_steady", func(r result) []string {
		return join(
			expect(!r.Failed && r.Ready && r.Transition == nil && len(r.Blocking) == 0, "not ready with nothing blocking"),
			expect(len(r.Patches) == 1 && r.Patches[0].Name == "lp_6_1_0_27_cloud_2" && r.Patches[0].State == "enabled",
				"patches are not [lp_6_1_0_27_cloud_2 enabled]"),
			expect(r.Drift != nil && cmp.Equal(r.Drift.NotInstalled, []string{"lp_6_1_0_27_cloud_2"}),
				"drift does not say the loaded patch is not installed for boot"),
		)
	})
	check("info_none", func(r result) []string {
		return expect(!r.Failed && r.Status != nil && r.Status.Interface == "none" && len(r.Patches) == 0,
			"a kernel without live patching is not interface none")
	})
	check("info_missing_tree", func(r result) []string {
		return expect(r.Failed && strings.Contains(r.Msg, "no-such-dir") && r.Document != nil && r.Document.ExitCode == 1,
			"a missing tree does not fail with klp's error document")
	})
	check("loaded_already", func(r result) []string {
		return expect(!r.Failed && !r.Changed && len(r.Actions) == 0 && r.Before != nil && r.Before.State == "enabled" &&
			r.Outcome != nil && string(r.Outcome) == "null",
			"a loaded patch is not left alone")
	})
	check("loaded_already_check", func(r result) []string {
		return expect(!r.Failed && !r.Changed && r.Patch == "lp_6_1_0_27_cloud_2", "check mode of a loaded patch (name with dashes) changes")
	})
	check("absent_check_diff", func(r result) []string {
		var diff struct{ Before, After state }
		_ = json.Unmarshal(r.Diff, &diff)
		return join(
			expect(!r.Failed && r.Changed && cmp.Equal(r.Actions, []string{"unload"}), "check mode does not say it would unload"),
			expect(diff.Before.State == "enabled" && diff.After.State == "absent", "diff is not enabled -> absent: "+string(r.Diff)),
			expect(strings.Contains(r.Msg, "would unload"), "msg does not say what it would do"),
		)
	})
	check("absent_on_a_copied_tree", func(r result) []string {
		return expect(r.Failed && !r.Changed && strings.Contains(r.Msg, "a copied tree is read only") &&
			r.Document != nil && r.Document.SchemaVersion == 1 && r.RC == 1,
			"klp's refusal to change a copied tree is not the task's failure")
	})
	check("load_from_controller_check", func(r result) []string {
		return join(
			expect(!r.Failed && r.Changed && r.Patch == "klp_vmlinux" && cmp.Equal(r.Actions, []string{"load"}),
				"check mode of a file from the controller does not say it would load klp_vmlinux"),
			expect(r.Preflight != nil && r.Preflight.Result == "warn", "preflight did not run (or did not warn on the copied tree)"),
		)
	})
	check("load_on_host_check", func(r result) []string {
		return expect(!r.Failed && r.Changed && cmp.Equal(r.Actions, []string{"load", "install"}) &&
			r.After != nil && r.After.Installed && r.After.State == "enabled",
			"state installed does not plan load and install")
	})
	check("load_refused_by_preflight", func(r result) []string {
		return expect(r.Failed && !r.Changed && len(r.FailedChecks) == 1 &&
			strings.HasPrefix(r.FailedChecks[0], "transition_in_progress: ") && strings.Contains(r.Msg, "livepatch_2_160000_1_1"),
			"a load during another transition is not refused by preflight with the failed check")
	})
	check("load_unknown_name", func(r result) []string {
		return expect(r.Failed && strings.Contains(r.Msg, "give src"), "a patch neither loaded nor installed does not ask for src")
	})
	check("load_not_a_module", func(r result) []string {
		return expect(r.Failed && strings.Contains(r.Msg, "not an ELF file"), "a file that is no module does not fail with klp's reason")
	})
	check("wait_for_transition_check", func(r result) []string {
		return expect(!r.Failed && r.Changed && cmp.Equal(r.Actions, []string{"wait"}), "a patch in transition is not waited for")
	})
	check("disable_in_transition_check", func(r result) []string {
		return expect(!r.Failed && r.Changed && cmp.Equal(r.Actions, []string{"disable"}), "a patch in transition is not disabled")
	})
	check("disabled_already", func(r result) []string {
		return expect(!r.Failed && !r.Changed && len(r.Actions) == 0, "an absent patch is disabled again")
	})
}

// TestRoleUnit: the role's klp.service template is contrib/klp.service with
// the role's binary directory, so a binary install boots like the packages.
func TestRoleUnit(t *testing.T) {
	unit, err := os.ReadFile("../klp.service")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("roles/klp/templates/klp.service.j2")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(string(unit), "@BINDIR@", "{{ klp_bin_dir }}")
	if diff := cmp.Diff(want, string(tmpl)); diff != "" {
		t.Errorf("roles/klp/templates/klp.service.j2 differs from contrib/klp.service (-want +got):\n%s", diff)
	}
}
