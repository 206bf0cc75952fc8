package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/modinfo"
)

const testRelease = "6.1.0-56-cloud-amd64" // the release modinfo/testdata was built for

// tree is a fake /sys, /proc and /boot in a temporary directory, written
// file by file: the few files each check reads, as the kernel prints them.
type tree struct {
	t               *testing.T
	sys, proc, boot string
}

// newTree returns a healthy 6.1 system: live patching, ftrace on, reliable
// stack traces, no lockdown, signatures checked but not enforced, nothing
// tainted, no patch or module loaded, tracefs and debugfs mounted.
func newTree(t *testing.T) *tree {
	t.Helper()
	root := t.TempDir()
	tr := &tree{t: t, sys: filepath.Join(root, "sys"), proc: filepath.Join(root, "proc"), boot: filepath.Join(root, "boot")}
	tr.mkdir("sys/kernel/livepatch")
	tr.write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
	tr.write("sys/module/module/parameters/sig_enforce", "N\n")
	tr.write("proc/sys/kernel/osrelease", testRelease+"\n")
	tr.write("proc/sys/kernel/ftrace_enabled", "1\n")
	tr.write("proc/sys/kernel/modules_disabled", "0\n")
	tr.write("proc/sys/kernel/tainted", "0\n")
	tr.write("proc/modules", "")
	tr.write("proc/kallsyms", strings.Join([]string{
		"0000000000000000 T _stext",
		"0000000000000000 t cmdline_proc_show",
		"0000000000000000 t version_proc_show",
		"0000000000000000 t meminfo_proc_show",
		"0000000000000000 t version_proc_show",
		"0000000000000000 t klp_static_helper",
		"0000000000000000 t klp_static_helper",
		"0000000000000000 t ext4_fill_super\t[ext4]",
	}, "\n")+"\n")
	tr.write("boot/config-"+testRelease, "CONFIG_X86_64=y\nCONFIG_LIVEPATCH=y\nCONFIG_HAVE_RELIABLE_STACKTRACE=y\nCONFIG_STACKTRACE=y\n# CONFIG_MODULE_SIG_FORCE is not set\n")
	tr.write("sys/kernel/tracing/available_filter_functions", "cmdline_proc_show\nversion_proc_show\nversion_proc_show\nmeminfo_proc_show\next4_fill_super [ext4]\n")
	tr.write("sys/kernel/tracing/enabled_functions", "")
	tr.write("sys/kernel/debug/kprobes/list", "")
	return tr
}

func (tr *tree) path(rel string) string { return filepath.Join(filepath.Dir(tr.sys), rel) }

func (tr *tree) write(rel, content string) {
	tr.t.Helper()
	p := tr.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) writeGzip(rel, content string) {
	tr.t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write([]byte(content))
	z.Close()
	tr.write(rel, b.String())
}

func (tr *tree) mkdir(rel string) {
	tr.t.Helper()
	if err := os.MkdirAll(tr.path(rel), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) remove(rel string) {
	tr.t.Helper()
	if err := os.RemoveAll(tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

// patch adds /sys/kernel/livepatch/<name> with the given functions
// ("object/function,sympos").
func (tr *tree) patch(name string, enabled, transition bool, funcs ...string) {
	tr.t.Helper()
	dir := "sys/kernel/livepatch/" + name
	tr.write(dir+"/enabled", b2s(enabled))
	tr.write(dir+"/transition", b2s(transition))
	for _, f := range funcs {
		obj, fn, _ := strings.Cut(f, "/")
		tr.write(dir+"/"+obj+"/patched", "1\n")
		tr.mkdir(dir + "/" + obj + "/" + fn)
	}
}

// module adds a loaded module: its /proc/modules line and
// /sys/module/<name>/{initstate,refcnt,taint}.
func (tr *tree) module(name string, refcnt int, taints string) {
	tr.t.Helper()
	line := name + " 16384 " + strconv.Itoa(refcnt) + " - Live 0x0000000000000000"
	if taints != "" {
		line += " (" + taints + ")"
	}
	old, _ := os.ReadFile(tr.path("proc/modules"))
	tr.write("proc/modules", string(old)+line+"\n")
	tr.write("sys/module/"+name+"/initstate", "live\n")
	tr.write("sys/module/"+name+"/refcnt", strconv.Itoa(refcnt)+"\n")
	tr.write("sys/module/"+name+"/taint", taints+"\n")
}

func b2s(b bool) string {
	if b {
		return "1\n"
	}
	return "0\n"
}

// handle opens the tree as a kernel handle.
func (tr *tree) handle() *kernel.Handle {
	tr.t.Helper()
	h, err := kernel.Open(kernel.Roots{Sys: tr.sys, Proc: tr.proc, Boot: tr.boot})
	if err != nil {
		tr.t.Fatal(err)
	}
	return h
}

// run runs preflight on the tree.
func (tr *tree) run(mod *modinfo.Module, cheap bool) *Report {
	tr.t.Helper()
	rep, err := Run(context.Background(), Inputs{Kernel: tr.handle(), Module: mod, Cheap: cheap})
	if err != nil {
		tr.t.Fatalf("Run: %v", err)
	}
	return rep
}

// check runs preflight and returns one check; it fails the test if the
// check did not run.
func (tr *tree) check(mod *modinfo.Module, id string) Check {
	tr.t.Helper()
	rep := tr.run(mod, false)
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	tr.t.Fatalf("check %s did not run; ran %v", id, ids(rep))
	return Check{}
}

func ids(rep *Report) []string {
	var out []string
	for _, c := range rep.Checks {
		out = append(out, c.ID)
	}
	return out
}

// loadModule parses one of modinfo's real test modules and returns a copy
// the test may change.
func loadModule(t *testing.T, file string) *modinfo.Module {
	t.Helper()
	m, err := modinfo.Open(filepath.Join("..", "..", "modinfo", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
