package preflight

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/kernel"
)

// readLog is a [kernel.Files] that counts how often each file is opened
// and each directory listed, by path relative to root.
type readLog struct {
	root string
	mu   sync.Mutex
	read map[string]int
}

func (l *readLog) log(op, path string) {
	rel, err := filepath.Rel(l.root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = path
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.read[op+" "+rel]++
}

func (l *readLog) Open(path string) (io.ReadCloser, error) {
	l.log("open", path)
	return kernel.OSFiles{}.Open(path)
}

func (l *readLog) ReadDir(path string) ([]fs.DirEntry, error) {
	l.log("list", path)
	return kernel.OSFiles{}.ReadDir(path)
}

func (l *readLog) Lstat(path string) (fs.FileInfo, error) { return kernel.OSFiles{}.Lstat(path) }
func (l *readLog) Stat(path string) (fs.FileInfo, error)  { return kernel.OSFiles{}.Stat(path) }

// reads runs preflight on the tree through a readLog and returns what it
// read, sorted, and how often.
func (tr *tree) reads(cheap bool, module string) ([]string, map[string]int) {
	tr.t.Helper()
	l := &readLog{root: filepath.Dir(tr.sys), read: map[string]int{}}
	h, err := kernel.NewHandle(kernel.Roots{Sys: tr.sys, Proc: tr.proc, Boot: tr.boot}, l, true)
	if err != nil {
		tr.t.Fatal(err)
	}
	in := Inputs{Kernel: h, Cheap: cheap}
	if module != "" {
		in.Module = loadModule(tr.t, module)
	}
	if _, err := Run(context.Background(), in); err != nil {
		tr.t.Fatal(err)
	}
	var out []string
	for r := range l.read {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, l.read
}

// TestCheapReads checks what klp load's preflight reads before every load:
// a few small files, never the kallsyms or ftrace scans.
func TestCheapReads(t *testing.T) {
	tr := newTree(t)
	want := []string{
		"list sys/kernel/livepatch", // the loaded patches
		"open boot/config-" + testRelease,
		"open proc/config.gz", // tried first
		"open proc/modules",
		"open proc/sys/kernel/ftrace_enabled",
		"open proc/sys/kernel/modules_disabled",
		"open proc/sys/kernel/osrelease",
		"open sys/kernel/security/lockdown",
		"open sys/module/module/parameters/sig_enforce",
	}
	if got, _ := tr.reads(true, "klp_vmlinux.ko"); !cmp.Equal(want, got) {
		t.Errorf("a cheap run read (-want +got):\n%s", cmp.Diff(want, got))
	}
	// A module built for another release is refused before the kernel
	// config is needed to compare machines.
	tr.write("proc/sys/kernel/osrelease", "6.1.0-57-cloud-amd64\n")
	var noConfig []string
	for _, r := range want {
		if !strings.Contains(r, "config") {
			noConfig = append(noConfig, r)
		}
	}
	if got, _ := tr.reads(true, "klp_vmlinux.ko"); !cmp.Equal(noConfig, got) {
		t.Errorf("a cheap run for another release read (-want +got):\n%s", cmp.Diff(noConfig, got))
	}
}

// TestFullReads checks that a full run reads the scans, and each file once
// whatever the number of checks that look at it.
func TestFullReads(t *testing.T) {
	tr := newTree(t)
	tr.module("klp_target", 0, "OE")
	got, count := tr.reads(false, "klp_twoobj.ko")
	for r, n := range count {
		if n > 1 {
			t.Errorf("a full run read %s %d times", r, n)
		}
	}
	for _, r := range []string{
		"open proc/kallsyms",
		"open sys/kernel/tracing/available_filter_functions",
		"open sys/kernel/tracing/enabled_functions",
		"open sys/kernel/debug/kprobes/list",
		"open proc/sys/kernel/tainted",
		"open sys/module/klp_target/initstate",
	} {
		if !slices.Contains(got, r) {
			t.Errorf("a full run did not %s; it read %q", r, got)
		}
	}
	// Without a module, the system checks read no scan.
	got, _ = tr.reads(false, "")
	for _, r := range got {
		if strings.Contains(r, "kallsyms") || strings.Contains(r, "tracing") || strings.Contains(r, "kprobes") {
			t.Errorf("a run without a module read %s", r)
		}
	}
}
