package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/klp-project/klp/internal/fakefs"
)

// The standing attack suite: hostile inputs of every kind klp reads (module
// files, copied sysfs and procfs trees), and every command run over them
// with a hard time limit. Each run must end in time, without a panic, with
// an exit status klp documents, without changing the tree, and within a
// bounded peak memory.

const (
	// attackTimeout tells a hang from a slow run: a bomb decompresses to
	// the cap in a few seconds on an idle machine, but CI machines are
	// shared, and a run over the 30 s tried first was seen at load 80.
	attackTimeout = 90 * time.Second
	// maxRSS is the decompression cap (256 MiB) plus room for the runtime;
	// a decompression bomb must not cost more.
	maxRSS = 300 << 20
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// klpBinary builds klp once for the package's tests. KLP_ATTACK_BIN names
// a klp binary to attack instead (a directory holding klp and kgr), to
// show what an older build did.
func klpBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv("KLP_ATTACK_BIN"); dir != "" {
			builtBin = filepath.Join(dir, "klp")
			return
		}
		dir, err := os.MkdirTemp("", "klp-attack-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "klp")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build klp: %v\n%s", err, out)
			return
		}
		buildErr = os.Symlink("klp", filepath.Join(dir, "kgr"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// attackRun is one run of klp.
type attackRun struct {
	code           int
	stdout, stderr string
	maxRSS         int64 // bytes
	timedOut       bool
}

// launchEnv makes the test binary a launcher (see TestMain).
const launchEnv = "KLP_ATTACK_LAUNCH"

// TestMain lets the test binary act as the launcher of one klp run. The
// launcher is needed for an honest peak: Linux starts a child's ru_maxrss
// at the high-water mark of the process that spawned it (Go spawns with
// CLONE_VM, so exec records the parent's memory), and this test process
// grows large while it makes the bombs. A freshly started launcher is
// small, so the peak it reports for its own child is klp's.
func TestMain(m *testing.M) {
	if os.Getenv(launchEnv) == "1" {
		os.Exit(launch(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// launch runs argv with the launcher's standard files, writes the child's
// peak memory in KiB to file descriptor 3 and exits as the child did.
func launch(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, launchEnv+"=") })
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "launch:", err)
		return 125
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprintf(os.NewFile(3, "rusage"), "%d\n", ru.Maxrss)
	}
	return cmd.ProcessState.ExitCode()
}

func runKLP(t *testing.T, prog string, args ...string) attackRun {
	t.Helper()
	bin := filepath.Join(filepath.Dir(klpBinary(t)), prog)
	ctx, cancel := context.WithTimeout(context.Background(), attackTimeout)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, self, append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), launchEnv+"=1")
	// klp runs in the launcher's process group, so a hang is killed whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	rusage, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rusage.Close()
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin = strings.NewReader("")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("run %s %q: %v", prog, args, err)
	}
	w.Close()
	err = cmd.Wait()
	r := attackRun{stdout: stdout.String(), stderr: stderr.String(), timedOut: ctx.Err() != nil}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil && !r.timedOut:
		t.Fatalf("run %s %q: %v", prog, args, err)
	}
	if r.code == 125 {
		t.Fatalf("run %s %q: %s", prog, args, r.stderr)
	}
	report, _ := io.ReadAll(rusage)
	if !r.timedOut {
		kib, err := strconv.ParseInt(strings.TrimSpace(string(report)), 10, 64)
		if err != nil {
			t.Fatalf("run %s %q: no peak memory from the launcher: %q", prog, args, report)
		}
		r.maxRSS = kib << 10
	}
	return r
}

// check applies the suite's rules to one run.
func (r attackRun) check(t *testing.T, what string) {
	t.Helper()
	switch {
	case r.timedOut:
		t.Errorf("%s: still running after %s (a hang)", what, attackTimeout)
	case strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine "):
		t.Errorf("%s: panicked:\n%s", what, r.stderr)
	case r.code != 0 && r.code != 1 && r.code != 3 && r.code != 4 && r.code != 5:
		t.Errorf("%s: exit status %d, which klp does not document; stderr %q", what, r.code, r.stderr)
	case r.maxRSS > maxRSS:
		t.Errorf("%s: peak memory %d MiB", what, r.maxRSS>>20)
	case strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07"):
		t.Errorf("%s: an escape sequence reached the terminal", what)
	}
}

// hostileModules makes module files that are not what they claim: special
// files, links, truncated and corrupted ELF, and a bomb of each
// compression format.
func hostileModules(t *testing.T, dir string) []string {
	t.Helper()
	real, err := os.ReadFile(filepath.Join("..", "..", "modinfo", "testdata", "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	add := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	fifo := filepath.Join(dir, "fifo.ko")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, fifo)
	for name, target := range map[string]string{"zero.ko": "/dev/zero", "loop.ko": "loop.ko", "dir.ko": dir, "fifolink.ko": fifo} {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	sock := filepath.Join(dir, "sock.ko")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	paths = append(paths, sock)
	add("empty.ko", nil)
	add("truncated.ko", real[:100])
	add("halfway.ko", real[:len(real)/2])
	// Lying headers: section offsets, sizes and counts pointing far away.
	for i, off := range []int{0x28, 0x30, 0x3a, 0x3c, 0x3e} {
		b := bytes.Clone(real)
		for j := 0; j < 4 && off+j < len(b); j++ {
			b[off+j] = 0xff
		}
		add(fmt.Sprintf("lying%d.ko", i), b)
	}
	// Every 64th byte flipped.
	b := bytes.Clone(real)
	for i := 64; i < len(b); i += 64 {
		b[i] ^= 0xa5
	}
	add("flipped.ko", b)
	// Bombs: 300 MiB of zeros, over the 256 MiB cap. Each is one
	// compressed MiB repeated: every format reads concatenated streams
	// (or frames) as one, and compressing 300 MiB anew costs minutes
	// under the race detector.
	zeros := make([]byte, 1<<20)
	bomb := func(name string, newWriter func(io.Writer) (io.WriteCloser, error)) {
		var one bytes.Buffer
		w, err := newWriter(&one)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		add(name, bytes.Repeat(one.Bytes(), 300))
	}
	bomb("bomb.ko.gz", func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, gzip.BestCompression) })
	bomb("bomb.ko.xz", func(w io.Writer) (io.WriteCloser, error) { return xz.NewWriter(w) })
	bomb("bomb.ko.zst", func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	})
	return paths
}

// hostileTree returns a copied tree of a blocked transition with hostile
// files where attributes and task files should be.
func hostileTree(t *testing.T) string {
	t.Helper()
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "transition-blocking.txtar"))
	lp := filepath.Join(root, "sys", "kernel", "livepatch")
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo := func(rel string) {
		p := filepath.Join(root, rel)
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(rel, target string) {
		p := filepath.Join(root, rel)
		os.RemoveAll(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	// FIFOs where attributes and task files are.
	mkfifo("sys/kernel/livepatch/livepatch_1_160000_1_1/replace")
	mkfifo("proc/2050/task/2050/stat")
	mkfifo("proc/2050/cmdline")
	mkfifo("proc/812/task/846/stack")
	mkfifo("proc/sys/kernel/osrelease")
	// Links: to a device, to itself, out of the tree.
	symlink("sys/kernel/livepatch/livepatch_1_160000_1_1/force", "/dev/zero")
	symlink("proc/2210/task/2210/patch_state", "patch_state")
	symlink("proc/modules", "/etc/passwd")
	// Names with control characters and traversal.
	if err := os.MkdirAll(filepath.Join(lp, "evil\x1b[2J"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sys/kernel/livepatch/evil\x1b[2J/enabled", "1\n")
	if err := os.MkdirAll(filepath.Join(lp, "livepatch_2_160000_1_1", "vmlinux", "..%2f..%2fetc,1"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("proc/1204/comm", "nfsd\x1b]0;owned\x07\n")
	// Huge and negative numbers, and an attribute too large to be one.
	write("sys/kernel/livepatch/livepatch_2_160000_1_1/stack_order", "-1\n")
	write("sys/module/livepatch_1_160000_1_1/refcnt", "99999999999999999999999\n")
	write("proc/1205/task/1205/patch_state", "-9223372036854775808\n")
	write("sys/kernel/livepatch/livepatch_2_160000_1_1/vmlinux/patched", strings.Repeat("1", 1<<20))
	return root
}

// snapshot lists a tree's paths with their modes and sizes.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %s %d\n", p, fi.Mode(), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("the attack suite runs the klp binary over hostile inputs")
	}
	dir := t.TempDir()
	modules := hostileModules(t, dir)
	tree := hostileTree(t)
	roots := []string{"--sysfs", filepath.Join(tree, "sys"), "--procfs", filepath.Join(tree, "proc")}
	before := snapshot(t, tree)

	t.Run("modules", func(t *testing.T) {
		for _, m := range modules {
			for _, args := range [][]string{{"info", m}, {"--json", "info", m}, {"preflight", m}} {
				args := append(append([]string{}, roots...), args...)
				r := runKLP(t, "klp", args...)
				r.check(t, "klp "+strings.Join(args[4:], " "))
				if r.code == 0 && strings.Contains(m, "bomb") {
					t.Errorf("%s: a bomb was read", m)
				}
			}
		}
	})
	t.Run("tree", func(t *testing.T) {
		for _, args := range [][]string{
			{"klp", "status"}, {"klp", "-v", "check"}, {"klp", "-vv", "patches"}, {"klp", "--json", "patches"},
			{"klp", "-vv", "blocking"}, {"klp", "--json", "-vv", "blocking"}, {"klp", "blocking", "--why"},
			{"klp", "--json", "blocking", "--why"}, {"klp", "list"}, {"klp", "--json", "list"}, {"klp", "preflight"},
			{"kgr", "-v", "blocking"}, {"kgr", "-v", "blocking_threads"},
			// Changes: refused on a copied tree, before anything happens.
			{"kgr", "poke"}, {"klp", "load", "--all"}, {"klp", "unload", "--all"}, {"klp", "force", "--yes", "livepatch_2_160000_1_1"},
			{"klp", "wait", "--on-stall=rollback"}, {"klp", "install", modules[len(modules)-1]},
		} {
			r := runKLP(t, args[0], append(append([]string{}, roots...), args[1:]...)...)
			r.check(t, strings.Join(args, " "))
		}
	})
	t.Run("snapshot", func(t *testing.T) {
		// A snapshot of the hostile tree: the capture must end, and
		// every read command must answer from it as the suite demands.
		file := filepath.Join(dir, "hostile.tar.zst")
		r := runKLP(t, "klp", append(append([]string{}, roots...), "snapshot", "-o", file)...)
		r.check(t, "klp snapshot of the hostile tree")
		if r.code != 0 {
			t.Fatalf("klp snapshot of the hostile tree: exit %d, %s", r.code, r.stderr)
		}
		for _, args := range [][]string{
			{"klp", "status"}, {"klp", "-vv", "patches"}, {"klp", "--json", "-vv", "blocking"}, {"klp", "blocking", "--why"},
			{"klp", "list"}, {"klp", "preflight"}, {"klp", "preflight", modules[0]}, {"kgr", "-v", "blocking_threads"},
			{"klp", "snapshot", "--show", file}, {"klp", "--json", "snapshot", "--show", file},
			{"kgr", "poke"}, {"klp", "unload", "--all"}, {"klp", "force", "--yes", "livepatch_2_160000_1_1"},
		} {
			r := runKLP(t, args[0], append([]string{"--snapshot", file}, args[1:]...)...)
			r.check(t, "--snapshot: "+strings.Join(args, " "))
		}
		// Hostile archives: each refused in one line, saying so.
		for name, data := range hostileArchives(t, file) {
			f := filepath.Join(dir, name+".tar.zst")
			if err := os.WriteFile(f, data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--snapshot", f, "-vv", "blocking"}, {"snapshot", "--show", f}} {
				r := runKLP(t, "klp", args...)
				what := name + ": klp " + strings.Join(args, " ")
				r.check(t, what)
				if r.code != 1 || !strings.Contains(r.stderr, "not a readable klp snapshot") || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line saying the snapshot is not readable", what, r.code, r.stderr)
				}
				t.Logf("%s: %s", what, strings.TrimSpace(r.stderr))
			}
		}
	})
	if after := snapshot(t, tree); after != before {
		t.Errorf("the hostile tree was changed")
	}
}

// hostileArchives makes archives from the snapshot at path that klp must
// refuse: truncated, corrupted, of a newer format, with an entry that
// leaves the tree, a link, a device, an entry larger than a snapshot may
// hold, and a file that is not one.
func hostileArchives(t *testing.T, path string) map[string][]byte {
	t.Helper()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{hdr, data})
	}
	// rewrite writes the snapshot's entries, the manifest changed by
	// manifest and extra inserted after it.
	rewrite := func(manifest func([]byte) []byte, extra ...entry) []byte {
		var b bytes.Buffer
		zw, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(zw)
		put := func(e entry) {
			if err := tw.WriteHeader(e.hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
		for i, e := range entries {
			if i == 0 {
				m := manifest(e.data)
				hdr := *e.hdr
				hdr.Size = int64(len(m))
				put(entry{&hdr, m})
				for _, x := range extra {
					put(x)
				}
				continue
			}
			put(e)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	same := func(m []byte) []byte { return m }
	reg := func(name, data string) entry {
		return entry{&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, []byte(data)}
	}
	corrupt := bytes.Clone(good)
	for i := len(corrupt) / 2; i < len(corrupt)/2+256 && i < len(corrupt); i++ {
		corrupt[i] ^= 0x5a
	}
	// A header announcing more than an entry may hold, and no content:
	// refused before anything is read.
	var huge bytes.Buffer
	zw, err := zstd.NewWriter(&huge)
	if err != nil {
		t.Fatal(err)
	}
	htw := tar.NewWriter(zw)
	htw.WriteHeader(&tar.Header{Name: entries[0].hdr.Name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(entries[0].data))})
	htw.Write(entries[0].data)
	htw.WriteHeader(&tar.Header{Name: "sys/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	htw.Flush()
	zw.Close()
	return map[string][]byte{
		"truncated": good[:len(good)/2],
		"corrupted": corrupt,
		"newer": rewrite(func(m []byte) []byte {
			return bytes.Replace(m, []byte(`"format_version": 1`), []byte(`"format_version": 99`), 1)
		}),
		"traversal":      rewrite(same, reg("sys/../../etc/cron.d/x", "* * * * * root true\n")),
		"absolute":       rewrite(same, reg("/etc/passwd", "x\n")),
		"symlink":        rewrite(same, entry{&tar.Header{Name: "sys/kernel/x", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}, nil}),
		"device":         rewrite(same, entry{&tar.Header{Name: "dev/x", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 5}, nil}),
		"huge":           huge.Bytes(),
		"not-a-snapshot": []byte("klp\n"),
	}
}
