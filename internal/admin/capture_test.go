package admin

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

// snapTree writes a kernel tree, one entry per name (a name ending in /
// is a directory), and returns its root and a handle on it that reads
// through files when given.
func snapTree(t *testing.T, entries map[string]string, files kernel.Files) (string, *kernel.Handle) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"sys", "proc", "dev", "boot"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range entries {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		write(t, p, data)
	}
	return root, handleOn(t, root, files)
}

// archiveTree lists what an archive holds below dir: each file's content,
// "error: ..." for one that fails to read, and "" for a directory (its
// name ends in /).
func archiveTree(t *testing.T, a *snapshot.Archive, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(d string)
	walk = func(d string) {
		ents, err := a.ReadDir(d)
		if err != nil {
			out[d+"/"] = "error: " + errString(err)
			return
		}
		for _, e := range ents {
			p := path.Join(d, e.Name())
			if e.IsDir() {
				out[p+"/"] = ""
				walk(p)
				continue
			}
			b, err := archiveFile(a, p)
			if err != nil {
				b = "error: " + errString(err)
			}
			out[p] = b
		}
	}
	walk(dir)
	return out
}

// bigLimit is the limit of the big files in TestSnapshotLimits: more
// than /proc/modules there.
const bigLimit = 128

// archiveFile reads a file of an archive.
func archiveFile(a *snapshot.Archive, p string) (string, error) {
	f, err := a.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// limitTree is a kernel in a transition to patch p: three tasks block it
// (9/9, 10/10, 10/11 and 10/101; a directory listing puts 10 before 9,
// and 101 before 11), one does
// not. With n = bigLimit the sized files are as long as their limits
// (kallsyms bigLimit bytes; a command line and a module attribute 8);
// with n = bigLimit+1 each is one byte longer.
func limitTree(n int) map[string]string {
	sized := func(size int) string { return strings.Repeat("x", size) }
	// kallsyms: n bytes, the first line's address to be zeroed.
	sym := "ffffffffa0001000 t f\n"
	kallsyms := sym + sized(n-len(sym)-1) + "\n"
	return map[string]string{
		"sys/kernel/livepatch/p/enabled":         "1\n",
		"sys/kernel/livepatch/p/transition":      "1\n",
		"sys/kernel/livepatch/p/tgt/patched":     "1\n",
		"sys/kernel/livepatch/p/tgt/f,1/":        "",
		"sys/kernel/livepatch/p/vmlinux/patched": "1\n",
		"sys/kernel/livepatch/p/vmlinux/g,1/":    "",
		// p: deep; its sections/ and holders/ are nothing klp reads.
		"sys/module/p/refcnt":       "0\n",
		"sys/module/p/parameters/x": "1\n",
		// deep, at the walk's depth (2), is walked; deeper is not.
		"sys/module/p/parameters/deep/v":        "4\n",
		"sys/module/p/parameters/deep/deeper/z": "5\n",
		"sys/module/p/sections/.text":           "0\n",
		"sys/module/p/holders/":                 "",
		"sys/module/tgt/parameters/y":           "2\n",
		"sys/module/loaded/version":             sized(n - bigLimit + 8),
		"sys/module/loaded/parameters/":         "",
		"sys/module/builtin/parameters/w":       "3\n",
		"proc/modules":                          "p 4096 0 - Live 0x0 (K)\ntgt 4096 1 p, Live 0x0\nloaded 4096 0 - Live 0x0\n",
		"proc/kallsyms":                         kallsyms,
		"proc/version":                          "Linux 6\n",
		"proc/sys/kernel/osrelease":             "6.1.0-t\n",
		"boot/config-6.1.0-t":                   "CONFIG_LIVEPATCH=y\n",
		"proc/9/cmdline":                        "/bin/sh\x00",
		"proc/9/task/9/patch_state":             "0\n",
		"proc/9/task/9/comm":                    "sh\n",
		"proc/9/task/9/stack":                   "s09\n",
		"proc/10/cmdline":                       sized(n - bigLimit + 8),
		"proc/10/task/10/patch_state":           "0\n",
		"proc/10/task/10/stack":                 "s10\n",
		"proc/10/task/11/patch_state":           "0\n",
		"proc/10/task/11/stack":                 "s11\n",
		"proc/10/task/101/patch_state":          "0\n",
		"proc/10/task/101/stack":                "s1a\n",
		"proc/20/cmdline":                       "init\x00",
		"proc/20/task/20/patch_state":           "1\n",
		"proc/20/task/20/stack":                 "s20\n",
		"proc/self/cmdline":                     "not a task\x00",
	}
}

// TestSnapshotLimits: every limit of a capture, met (nothing cut, no
// note) and passed by one (cut, and the manifest says so), and what the
// capture takes of each part of the tree.
func TestSnapshotLimits(t *testing.T) {
	t.Parallel()
	zeroed := "0000000000000000 t f\n"
	for _, tc := range []struct {
		name  string
		size  int // the sized files' size
		lim   captureLimits
		files map[string]string // what differs from the tree
		notes []string
	}{{
		name: "met",
		size: bigLimit,
		lim:  captureLimits{cmdline: 8, attr: 8, bigFile: bigLimit, log: 64, stacks: 4, walk: 9, walkDepth: 2},
		files: map[string]string{
			"/proc/10/cmdline":           "xxxxxxxx",
			"/sys/module/loaded/version": "xxxxxxxx",
			"/proc/kallsyms":             zeroed + strings.Repeat("x", bigLimit-len(zeroed)-1) + "\n",
		},
	}, {
		name: "passed",
		size: bigLimit + 1,
		lim:  captureLimits{cmdline: 8, attr: 8, bigFile: bigLimit, log: 64, stacks: 3, walk: 8, walkDepth: 2},
		files: map[string]string{
			"/proc/10/cmdline":           "xxxxxxxx",
			"/sys/module/loaded/version": "xxxxxxxx",
			"/proc/kallsyms":             zeroed + strings.Repeat("x", bigLimit-len(zeroed)),
			// The ninth entry of the walk: preflight lists the
			// directory, which makes the file known, not read.
			"/sys/kernel/livepatch/p/vmlinux/patched": "error: not captured in the snapshot",
			// The third stack.
			"/proc/10/task/101/stack": "",
		},
		notes: []string{
			"/sys/kernel/livepatch/p/vmlinux: more than 8 entries, the rest not captured",
			"4 tasks block the transition: the stacks of the first 3 were captured",
			"/sys/module/loaded/version was cut at 8 bytes",
			"/proc/kallsyms was cut at 128 bytes",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tree := limitTree(tc.size)
			root, h := snapTree(t, tree, nil)
			if err := os.Chmod(filepath.Join(root, "sys/kernel/livepatch/p/tgt"), 0o700); err != nil {
				t.Fatal(err)
			}
			lim := tc.lim
			m, a := captureOf(t, h, SnapshotOptions{limits: &lim, Workers: 2})
			if diff := cmp.Diff(append([]string{}, tc.notes...), m.Notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
			want := map[string]string{
				// The live patching tree, walkDepth (2) directories
				// deep: the function directories are a level below.
				"/sys/kernel/livepatch/":                  "",
				"/sys/kernel/livepatch/p/":                "",
				"/sys/kernel/livepatch/p/enabled":         "1\n",
				"/sys/kernel/livepatch/p/transition":      "1\n",
				"/sys/kernel/livepatch/p/tgt/":            "",
				"/sys/kernel/livepatch/p/tgt/patched":     "1\n",
				"/sys/kernel/livepatch/p/vmlinux/":        "",
				"/sys/kernel/livepatch/p/vmlinux/patched": "1\n",
				"/sys/module/":                            "",
				"/sys/module/p/":                          "",
				"/sys/module/p/refcnt":                    "0\n",
				"/sys/module/p/parameters/":               "",
				"/sys/module/p/parameters/x":              "1\n",
				"/sys/module/p/parameters/deep/":          "",
				"/sys/module/p/parameters/deep/v":         "4\n",
				// Preflight lists the function directories.
				"/sys/kernel/livepatch/p/tgt/f,1/":     "",
				"/sys/kernel/livepatch/p/vmlinux/g,1/": "",
				"/sys/module/tgt/":                     "",
				"/sys/module/tgt/parameters/":          "",
				"/sys/module/tgt/parameters/y":         "2\n",
				"/sys/module/loaded/":                  "",
				"/sys/module/loaded/version":           "",
				"/sys/module/builtin/":                 "",
				"/proc/modules":                        tree["proc/modules"],
				"/proc/version":                        "Linux 6\n",
				"/proc/sys/kernel/osrelease":           "6.1.0-t\n",
				"/boot/config-6.1.0-t":                 "CONFIG_LIVEPATCH=y\n",
				"/proc/kallsyms":                       "",
				"/proc/9/cmdline":                      "/bin/sh\x00",
				"/proc/9/task/9/patch_state":           "0\n",
				"/proc/9/task/9/comm":                  "sh\n",
				"/proc/9/task/9/stack":                 "s09\n",
				"/proc/10/cmdline":                     "",
				"/proc/10/task/10/patch_state":         "0\n",
				"/proc/10/task/10/stack":               "s10\n",
				"/proc/10/task/11/patch_state":         "0\n",
				"/proc/10/task/11/stack":               "s11\n",
				"/proc/10/task/101/patch_state":        "0\n",
				"/proc/10/task/101/stack":              "s1a\n",
				"/proc/20/cmdline":                     "init\x00",
				"/proc/20/task/20/patch_state":         "1\n",
			}
			var absent []string
			for p, v := range tc.files {
				if v == "" {
					delete(want, p)
					absent = append(absent, p)
					continue
				}
				want[p] = v
			}
			got := map[string]string{}
			for p, v := range archiveTree(t, a, "/") {
				if _, ok := want[p]; ok {
					got[p] = v
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the archive (-want +got):\n%s", diff)
			}
			for _, p := range append([]string{"/sys/module/p/parameters/deep/deeper", "/sys/module/p/sections", "/sys/module/p/holders",
				"/sys/module/loaded/parameters", "/sys/module/builtin/parameters", "/proc/20/task/20/stack", "/proc/self"}, absent...) {
				if _, err := a.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %v, want it left out", p, err)
				}
			}
			if fi, err := a.Lstat("/sys/kernel/livepatch/p/tgt"); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("a directory's mode: %v %v", fi, err)
			}
			stacks := min(4, lim.stacks)
			kinds := map[string]snapshot.Captured{}
			for _, k := range m.Captured {
				kinds[k.What] = k
			}
			if got, want := kinds["tasks"].Paths[2:], []string{"3 processes, 5 threads"}; !cmp.Equal(got, want) {
				t.Errorf("tasks: %q, want %q", got, want)
			}
			if got, want := kinds["stacks"].Paths[1:], []string{"4 blocking tasks, " + plural(stacks, "stack", "stacks")}; !cmp.Equal(got, want) {
				t.Errorf("stacks: %q, want %q", got, want)
			}
			if k := kinds["stacks"]; k.Files != stacks || k.Bytes != int64(stacks)*4 {
				t.Errorf("stacks: %d files of %d bytes, want %d of %d", k.Files, k.Bytes, stacks, stacks*4)
			}
			// The tasks: 3 command lines (self is no task), 5 threads' patch_state, 1 comm.
			if k := kinds["tasks"]; k.Files != 3+5+1 {
				t.Errorf("tasks: %d files, want 9", k.Files)
			}
			// enabled, transition and the objects' patched, but the
			// last when the walk stops short.
			lpFiles := 4
			if strings.HasPrefix(tc.files["/sys/kernel/livepatch/p/vmlinux/patched"], "error") {
				lpFiles--
			}
			if k := kinds["livepatch"]; k.Files != lpFiles || k.Bytes != int64(2*lpFiles) {
				t.Errorf("livepatch: %d files of %d bytes, want %d of %d", k.Files, k.Bytes, lpFiles, 2*lpFiles)
			}
			if k := kinds["config"]; k.Files != 1 || k.Bytes != int64(len("CONFIG_LIVEPATCH=y\n")) {
				t.Errorf("config: %+v", k)
			}
			if m.Kernel.Version == nil || *m.Kernel.Version != "Linux 6" {
				t.Errorf("kernel version %v", m.Kernel.Version)
			}
			if tr := m.Transition.Before; tr == nil || tr.Patch == nil || *tr.Patch != "p" || tr.Target != "patched" || m.Transition.Moved {
				t.Errorf("transition %+v", m.Transition)
			}
			if m.Store.Dirs == nil || m.Store.Installed == nil || m.Packages == nil {
				t.Errorf("empty lists must be [], not null: %+v %+v", m.Store, m.Packages)
			}
		})
	}
}

// TestCaptureName: a path's archive name, below the longest root that
// holds it.
func TestCaptureName(t *testing.T) {
	t.Parallel()
	r := filepath.Join(t.TempDir(), "r")
	for _, d := range []string{"proc", "dev", "b"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h, err := kernel.NewHandle(kernel.Roots{Sys: r, Proc: r + "/proc", Dev: r + "/dev", Boot: r + "/b"}, kernel.OSFiles{}, false)
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{h: h}
	for p, want := range map[string]string{
		"/proc/1/stat": "proc/1/stat",
		"/proc":        "proc",
		"":             "sys",
		"/kernel":      "sys/kernel",
		"/procfs/x":    "sys/procfs/x",
		"/b/config":    "boot/config",
		"/dev/kmsg":    "dev/kmsg",
		"-elsewhere":   "",
		"r":            "",
	} {
		if got := c.name(r + p); got != want {
			t.Errorf("name(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestIsPID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"1": true, "4194304": true, "1234567890": true,
		"": false, "12345678901": false, "12a": false, "a12": false, "self": false, "-1": false,
	} {
		if got := isPID(s); got != want {
			t.Errorf("isPID(%q) = %v", s, got)
		}
	}
}

func TestPlural(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0 tasks", 1: "1 task", 2: "2 tasks"} {
		if got := plural(n, "task", "tasks"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
}

func TestSameTransition(t *testing.T) {
	t.Parallel()
	p, q := "p", "q"
	tr := func(target string, patch *string) *snapshot.Transition {
		return &snapshot.Transition{Target: target, Patch: patch}
	}
	for _, tc := range []struct {
		a, b *snapshot.Transition
		want bool
	}{
		{nil, nil, true},
		{tr("patched", &p), nil, false},
		{nil, tr("patched", &p), false},
		{tr("patched", &p), tr("patched", &p), true},
		{tr("patched", &p), tr("unpatched", &p), false},
		{tr("patched", &p), tr("patched", &q), false},
		{tr("patched", nil), tr("patched", &p), false},
		{tr("patched", &p), tr("patched", nil), false},
		{tr("patched", nil), tr("patched", nil), true},
	} {
		if got := sameTransition(tc.a, tc.b); got != tc.want {
			t.Errorf("sameTransition(%+v, %+v) = %v", tc.a, tc.b, got)
		}
	}
}

// TestRecordingFiles: the strongest question asked of a path is kept.
func TestRecordingFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	write(t, file, "x")
	r := &recordingFiles{Files: kernel.OSFiles{}, seen: map[string]string{}}
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "s")
	rc, err := r.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	r.Lstat(file)
	r.Stat(file)
	r.ReadDir(sub)
	r.Lstat(sub)
	r.Stat(sub)
	r.Lstat(stat)
	r.Stat(dir)
	r.ReadDir(dir)
	want := map[string]string{file: "open", sub: "readdir", stat: "stat", dir: "readdir"}
	if diff := cmp.Diff(want, r.seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
}

// TestSnapshotUnreadableListed: the manifest lists the first
// MaxUnreadableListed unreadable files by name and counts them all.
func TestSnapshotUnreadableListed(t *testing.T) {
	t.Parallel()
	entries := map[string]string{"sys/kernel/livepatch/": ""}
	n := snapshot.MaxUnreadableListed + 1
	var names []string
	for pid := 1; pid <= n; pid++ {
		dir := fmt.Sprintf("proc/%d/task/%d/", pid, pid)
		entries[dir+"comm"] = "x\n"
		entries[fmt.Sprintf("proc/%d/cmdline", pid)] = "x\x00"
		names = append(names, "/"+dir+"comm")
	}
	sort.Strings(names)
	_, h := snapTree(t, entries, &faultFiles{faults: map[string]error{"/comm": syscall.EACCES}})
	m, _ := captureOf(t, h, SnapshotOptions{})
	var got []string
	for _, u := range m.Unreadable {
		got = append(got, u.Path)
	}
	if diff := cmp.Diff(names[:n-1], got); diff != "" || m.UnreadableTotal != n {
		t.Errorf("%d unreadable, listed (-want +got):\n%s", m.UnreadableTotal, diff)
	}
}

// fakeInstalled is a store listing.
type fakeInstalled struct {
	list []store.Installed
	err  error
}

func (f fakeInstalled) List(string) ([]store.Installed, error) { return f.list, f.err }
func (f fakeInstalled) Find(string, string) (store.Installed, error) {
	return store.Installed{}, f.err
}

// fakePackages answers for one patch, differently at each level.
type fakePackages struct{ patch string }

func (f fakePackages) Describe(module string, verbose int) (*PackageInfo, []string, error) {
	if module != f.patch {
		return nil, []string{"no package owns " + module}, errors.New("rpm failed")
	}
	info := &PackageInfo{Manager: "rpm", Name: "kernel-livepatch", Version: "1", Release: "2", Arch: "x86_64",
		Full: "kernel-livepatch-1-2.x86_64", CVEs: []string{"CVE-2026-1"}, Bugs: []string{"bsc#1"}}
	if verbose >= 2 {
		info.Expiration = "2027-01-01"
		info.Update = "up to date"
	}
	return info, nil, nil
}

// TestSnapshotRecordsStoreAndPackages: the store's listing (and its
// error) and each loaded patch's package at both levels, answered again
// from the snapshot as the machine's package manager answered.
func TestSnapshotRecordsStoreAndPackages(t *testing.T) {
	t.Parallel()
	_, h := fixture(t, "transition-blocking", nil)
	in := store.Installed{Name: "livepatch_1_160000_1_1", Release: "6.4.0", Path: "/var/lib/klp/6.4.0/livepatch_1_160000_1_1.ko", Source: "klp"}
	src := fakePackages{patch: "livepatch_2_160000_1_1"}
	m, _ := captureOf(t, h, SnapshotOptions{
		Installed: fakeInstalled{list: []store.Installed{in}, err: errors.New("read /var/lib/klp/x: bad")},
		StoreDirs: []string{"/var/lib/klp"}, Packages: src,
	})
	if diff := cmp.Diff(snapshot.Store{Dirs: []string{"/var/lib/klp"}, Installed: []snapshot.Installed{{Name: in.Name, Release: in.Release, Path: in.Path, Source: in.Source}},
		Error: ptr("read /var/lib/klp/x: bad")}, m.Store); diff != "" {
		t.Errorf("store (-want +got):\n%s", diff)
	}
	if len(m.Packages) != 4 {
		t.Fatalf("%d package records, want 2 patches at 2 levels", len(m.Packages))
	}
	rec := RecordedPackages(m.Packages)
	for _, patch := range []string{"livepatch_1_160000_1_1", "livepatch_2_160000_1_1"} {
		for v := 0; v <= 3; v++ {
			wi, wn, werr := src.Describe(patch, max(v, 1))
			gi, gn, gerr := rec.Describe(patch, v)
			if diff := cmp.Diff(wi, gi); diff != "" || !cmp.Equal(wn, gn, cmpopts.EquateEmpty()) || fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Errorf("%s at -v %d: notes %q, error %v; want %q, %v; package (-machine +snapshot):\n%s", patch, v, gn, gerr, wn, werr, diff)
			}
		}
	}
	if i, n, err := rec.Describe("other", 1); i != nil || n != nil || err != nil {
		t.Errorf("a patch the snapshot did not see: %v %v %v", i, n, err)
	}
	if RecordedPackages(nil) != nil {
		t.Error("no records: a package source")
	}
}

func ptr[T any](v T) *T { return &v }
