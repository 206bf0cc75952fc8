package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/klp-project/klp/kernel"
)

var testTime = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func testManifest() *Manifest {
	return &Manifest{Format: Format, FormatVersion: FormatVersion, KlpVersion: "test", Time: testTime, Source: "copied tree",
		Kernel: Kernel{Release: "6.12.0", Interface: "livepatch"}, Captured: []Captured{}, Unreadable: []Unreadable{},
		Notes: []string{}, Store: Store{Dirs: []string{"/var/lib/klp"}, Installed: []Installed{{Name: "p", Release: "6.12.0", Path: "/var/lib/klp/6.12.0/p.ko", Source: "klp"}}}}
}

// sample writes an archive with one of each kind of entry.
func sample(t testing.TB) []byte {
	t.Helper()
	w := NewWriter(testTime)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.File("proc/sys/kernel/osrelease", []byte("6.12.0\n"), 0o444))
	must(w.File("sys/kernel/livepatch/p/enabled", []byte("1\n"), 0o644))
	must(w.Dir("sys/kernel/livepatch/p/vmlinux/cmdline_proc_show,1", 0o755))
	must(w.Dir("sys/kernel/livepatch/p", 0o755))
	var r Records
	must(r.Data("proc/1/task/1/patch_state", []byte("1\n")))
	must(r.Data("proc/1/cmdline", []byte("/sbin/init\x00splash\x00")))
	must(r.Data("proc/1/task/1/stat", []byte{}))
	must(r.Error("sys/kernel/livepatch/p/force", false, "open", syscall.EACCES, 0o200))
	must(r.Error("proc/1/task/1/stack", false, "read", errors.New("weird \"failure\"\n"), 0o400))
	must(r.Error("sys/kernel/debug", true, "open", syscall.EACCES, 0o700))
	must(r.Placeholder("sys/kernel/security/apparmor", 0o444))
	must(w.AddRecords(&r))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf, testManifest()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(t *testing.T, a *Archive, path string) (string, error) {
	t.Helper()
	f, err := a.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	a, err := Read(bytes.NewReader(sample(t)), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*testManifest(), a.Manifest()); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
	for path, want := range map[string]string{
		"/proc/sys/kernel/osrelease":      "6.12.0\n",
		"/sys/kernel/livepatch/p/enabled": "1\n",
		"/proc/1/cmdline":                 "/sbin/init\x00splash\x00",
		"/proc/1/task/1/stat":             "",
	} {
		got, err := readAll(t, a, path)
		if err != nil || got != want {
			t.Errorf("read %s = %q, %v; want %q", path, got, err, want)
		}
	}
	// Errors come back as the capture met them.
	_, err = a.Open("/sys/kernel/livepatch/p/force")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "open" || !errors.Is(err, syscall.EACCES) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("open force: %v, want an open error EACCES", err)
	}
	_, err = readAll(t, a, "/proc/1/task/1/stack")
	if !errors.As(err, &pe) || pe.Op != "read" || pe.Err.Error() != "weird \"failure\"\n" {
		t.Errorf("read stack: %v, want the recorded read error", err)
	}
	if _, err := a.Open("/sys/kernel/security/apparmor"); !errors.Is(err, ErrNotCaptured) {
		t.Errorf("open placeholder: %v, want ErrNotCaptured", err)
	}
	if fi, err := a.Lstat("/sys/kernel/security/apparmor"); err != nil || fi.IsDir() || fi.Mode() != 0o444 {
		t.Errorf("lstat placeholder: %v %v", fi, err)
	}
	if _, err := a.ReadDir("/sys/kernel/debug"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("readdir of an unlistable directory: %v", err)
	}
	if fi, err := a.Stat("/sys/kernel/debug"); err != nil || !fi.IsDir() || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("stat of an unlistable directory: %v %v", fi, err)
	}
	// Missing files, directories and files where directories are asked.
	for _, c := range []struct {
		path string
		want error
		call func(string) error
	}{
		{"/sys/nothing", syscall.ENOENT, func(p string) error { _, err := a.Open(p); return err }},
		{"/etc/passwd", syscall.ENOENT, func(p string) error { _, err := a.Open(p); return err }},
		{"relative", syscall.ENOENT, func(p string) error { _, err := a.Stat(p); return err }},
		{"/sys/kernel/../kernel", syscall.ENOENT, func(p string) error { _, err := a.Stat(p); return err }},
		{"/sys/kernel", syscall.EISDIR, func(p string) error { _, err := a.Open(p); return err }},
		{"/sys/kernel", kernel.ErrNotRegular, func(p string) error { _, err := a.Open(p); return err }},
		{"/proc/1/cmdline", syscall.ENOTDIR, func(p string) error { _, err := a.ReadDir(p); return err }},
		{"/proc/1/cmdline/x", syscall.ENOTDIR, func(p string) error { _, err := a.Lstat(p); return err }},
	} {
		if err := c.call(c.path); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.path, err, c.want)
		}
	}
	ents, err := a.ReadDir("/sys/kernel/livepatch/p")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"enabled", "force", "vmlinux"}, names); diff != "" {
		t.Errorf("readdir (-want +got):\n%s", diff)
	}
	fi, err := a.Stat("/sys/kernel/livepatch/p")
	if err != nil || fi.Mode() != fs.ModeDir|0o755 || !fi.ModTime().Equal(testTime) {
		t.Errorf("stat p: %v %v", fi, err)
	}
	if fi, err := a.Stat("/sys/kernel/livepatch/p/vmlinux/cmdline_proc_show,1"); err != nil || !fi.IsDir() {
		t.Errorf("an empty directory survives: %v %v", fi, err)
	}
}

// TestHandle reads through a kernel.Handle, as klp --snapshot does.
func TestHandle(t *testing.T) {
	t.Parallel()
	a, err := Read(bytes.NewReader(sample(t)), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.Handle()
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := h.Release(); err != nil || rel != "6.12.0" {
		t.Errorf("release %q %v", rel, err)
	}
	if dir, ok := h.ProcDir(); ok || dir != "/proc" {
		t.Errorf("ProcDir = %q, %v: the scanner must not open host directories", dir, ok)
	}
	if h.KernelFS() {
		t.Error("a snapshot is not the running kernel")
	}
	if v, err := h.ReadBool("/sys/kernel/livepatch/p/enabled"); err != nil || !v {
		t.Errorf("enabled: %v %v", v, err)
	}
	if !h.Exists("/sys/kernel/livepatch/p/force") {
		t.Error("a write-only attribute exists")
	}
}

func TestStoreListing(t *testing.T) {
	t.Parallel()
	a, err := Read(bytes.NewReader(sample(t)), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Store().List("")
	if err != nil || len(l) != 1 || l[0].Name != "p" {
		t.Errorf("list: %v %v", l, err)
	}
	if l, _ := a.Store().List("5.0"); len(l) != 0 {
		t.Errorf("list 5.0: %v", l)
	}
	if _, err := a.Store().Find("p", "6.12.0"); !errors.Is(err, ErrNoModuleFiles) || !strings.Contains(err.Error(), "/var/lib/klp/6.12.0/p.ko") {
		t.Errorf("find: %v", err)
	}
	if _, err := a.Store().Find("q", "6.12.0"); err == nil || errors.Is(err, ErrNoModuleFiles) {
		t.Errorf("find missing: %v", err)
	}
}

func TestWriterRefuses(t *testing.T) {
	t.Parallel()
	w := NewWriter(testTime)
	var r Records
	for _, name := range []string{"", "/sys/x", "sys/../etc", "sys/./x", "sys//x", "sys/x/", "etc/passwd", "manifest.json", "packed",
		"sys/a b", "sys/a\nb", "sys/a\\b", "sys/\x7f", "sys/" + strings.Repeat("x", 256), "sys" + strings.Repeat("/x", 16)} {
		if err := w.File(name, nil, 0o644); !errors.Is(err, ErrBadName) {
			t.Errorf("File(%q): %v, want ErrBadName", name, err)
		}
		if err := r.Data(name, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Data(%q): %v, want ErrBadName", name, err)
		}
	}
	if err := w.File("sys/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.File("sys/x", nil, 0o644); err == nil {
		t.Error("a name added twice")
	}
	if err := r.Data("sys/x", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.AddRecords(&r); err == nil {
		t.Error("a record of a name added as a file")
	}
	if err := r.Error("sys/y", false, "write", syscall.EIO, 0o644); err == nil {
		t.Error("an operation that is not open or read")
	}
}

// rawArchive builds a zstd tar from headers and contents, manifest first
// unless the first header is given.
type rawEntry struct {
	hdr  tar.Header
	data string
}

func manifestEntry(version int) rawEntry {
	m := testManifest()
	m.FormatVersion = version
	b, _ := json.Marshal(m)
	return rawEntry{tar.Header{Name: ManifestName, Typeflag: tar.TypeReg, Mode: 0o644}, string(b)}
}

func reg(name, data string) rawEntry {
	return rawEntry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, data}
}

func rawArchive(t testing.TB, entries ...rawEntry) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		h := e.hdr
		if h.Size == 0 {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
		if h.Size > int64(len(e.data)) {
			// An entry announcing more than it holds ends the
			// archive: its header is out, nothing else can be.
			tw.Flush()
			return compress(t, tb.Bytes())
		}
	}
	tw.Close()
	return compress(t, tb.Bytes())
}

// encoder is shared: making one costs more than a fuzz iteration.
var encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

func compress(t testing.TB, b []byte) []byte { return encoder.EncodeAll(b, nil) }

func good() []rawEntry {
	return []rawEntry{manifestEntry(1), {tar.Header{Name: "sys/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "proc/", Typeflag: tar.TypeDir, Mode: 0o755}, ""}, reg("packed", "")}
}

func with(extra ...rawEntry) []rawEntry {
	g := good()
	return append(append(g[:3:3], extra...), g[3])
}

// TestHostile: every bad archive gets one error that wraps ErrCorrupt and
// says what is wrong.
func TestHostile(t *testing.T) {
	t.Parallel()
	ok := rawArchive(t, good()...)
	if _, err := Read(bytes.NewReader(ok), DefaultLimits); err != nil {
		t.Fatalf("the minimal archive: %v", err)
	}
	full := sample(t)
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte("x"))
	gw.Close()
	corrupt := append([]byte(nil), full...)
	for i := len(corrupt) / 3; i < len(corrupt)/3+64; i++ {
		corrupt[i] ^= 0x5a
	}
	var plainTar bytes.Buffer
	tw := tar.NewWriter(&plainTar)
	tw.WriteHeader(&tar.Header{Name: ManifestName, Typeflag: tar.TypeReg})
	tw.Close()

	cases := []struct {
		name string
		data []byte
		lim  Limits
		want string
	}{
		{"empty", nil, DefaultLimits, "empty"},
		{"gzip", gz.Bytes(), DefaultLimits, "gzip-compressed"},
		{"plain tar", plainTar.Bytes(), DefaultLimits, "not zstd-compressed"},
		{"zstd of nothing", compress(t, nil), DefaultLimits, "empty archive"},
		{"zstd of junk", compress(t, bytes.Repeat([]byte("junk"), 200)), DefaultLimits, "at the start"},
		{"truncated", full[:len(full)/2], DefaultLimits, "truncated"},
		{"truncated zstd frame", full[:8], DefaultLimits, ""},
		{"corrupted", corrupt, DefaultLimits, ""},
		{"manifest not first", rawArchive(t, reg("sys/x", "1"), manifestEntry(1)), DefaultLimits, "first entry"},
		{"manifest not JSON", rawArchive(t, reg(ManifestName, "{")), DefaultLimits, "not JSON"},
		{"not our manifest", rawArchive(t, reg(ManifestName, `{"format":"other","format_version":1}`)), DefaultLimits, `format "other"`},
		{"newer version", rawArchive(t, manifestEntry(2)), DefaultLimits, "format version 2, newer than the 1"},
		{"version 0", rawArchive(t, manifestEntry(0)), DefaultLimits, "format version 0"},
		{"traversal", rawArchive(t, with(reg("sys/../../etc/passwd", "x"))...), DefaultLimits, "not a clean relative path"},
		{"dot dot root", rawArchive(t, with(reg("../x", "x"))...), DefaultLimits, ""},
		{"absolute", rawArchive(t, with(reg("/etc/passwd", "x"))...), DefaultLimits, "not below"},
		{"outside the roots", rawArchive(t, with(reg("etc/passwd", "x"))...), DefaultLimits, "not below"},
		{"symlink", rawArchive(t, with(rawEntry{tar.Header{Name: "sys/l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, ""})...), DefaultLimits, "symbolic link"},
		{"hard link", rawArchive(t, with(rawEntry{tar.Header{Name: "sys/l", Typeflag: tar.TypeLink, Linkname: "sys"}, ""})...), DefaultLimits, "hard link"},
		{"device", rawArchive(t, with(rawEntry{tar.Header{Name: "dev/kmsg", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 11}, ""})...), DefaultLimits, "a device"},
		{"fifo", rawArchive(t, with(rawEntry{tar.Header{Name: "proc/f", Typeflag: tar.TypeFifo}, ""})...), DefaultLimits, "FIFO"},
		{"duplicate", rawArchive(t, with(reg("sys/x", "1"), reg("sys/x", "2"))...), DefaultLimits, "twice"},
		{"file and dir", rawArchive(t, with(reg("sys/x", "1"), reg("sys/x/y", "2"))...), DefaultLimits, "a file and a directory"},
		{"no packed", rawArchive(t, good()[:3]...), DefaultLimits, "no packed"},
		{"two packed", rawArchive(t, append(good(), reg("packed", ""))...), DefaultLimits, "two packed"},
		{"no proc", rawArchive(t, manifestEntry(1), reg("sys/x", ""), reg("packed", "")), DefaultLimits, "no proc/"},
		{"huge entry header", rawArchive(t, with(rawEntry{tar.Header{Name: "sys/big", Typeflag: tar.TypeReg, Size: 1 << 40}, ""})...), DefaultLimits, "more than the"},
		{"entry over the limit", rawArchive(t, with(reg("sys/big", strings.Repeat("x", 2000)))...), Limits{Total: 1 << 20, Entry: 1000, Files: 100}, "more than the 1000"},
		{"total over the limit", rawArchive(t, with(reg("sys/a", strings.Repeat("x", 900)), reg("sys/b", strings.Repeat("x", 900)))...), Limits{Total: 3000, Entry: 1000, Files: 100}, "more than 3000 bytes uncompressed"},
		{"too many entries", rawArchive(t, with(reg("sys/a", ""), reg("sys/b", ""), reg("sys/c", ""))...), Limits{Total: 1 << 20, Entry: 1000, Files: 3}, "more than 3 entries"},
		{"packed traversal", rawArchive(t, append(good()[:3], reg("packed", "sys/../x =1\nx\n"))...), DefaultLimits, "packed record at byte 0"},
		{"packed short", rawArchive(t, append(good()[:3], reg("packed", "sys/x =10\nx\n"))...), DefaultLimits, "the entry ends first"},
		{"packed errno", rawArchive(t, append(good()[:3], reg("packed", "sys/x !open ENOSUCH 644\n"))...), DefaultLimits, "unknown errno"},
		{"packed duplicate", rawArchive(t, append(good()[:3], reg("packed", "sys/x =0\n\nsys/x =0\n\n"))...), DefaultLimits, "twice"},
		{"global pax header", rawArchive(t, with(rawEntry{tar.Header{Name: "g", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"path": "x"}}, ""})...), DefaultLimits, "tar type"},
	}
	for _, c := range cases {
		lim := c.lim
		a, err := Read(bytes.NewReader(c.data), lim)
		if err == nil {
			t.Errorf("%s: read %v, want an error", c.name, a.Manifest())
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v does not wrap ErrCorrupt", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
		if strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%s: a multi-line error: %q", c.name, err)
		}
	}
}

func TestParsePacked(t *testing.T) {
	t.Parallel()
	var b []byte
	b = appendData(b, "proc/1/cmdline", []byte("a\x00b\n\x00"))
	b = appendError(b, "sys/f", false, "open", syscall.EACCES, 0o200)
	b = appendError(b, "sys/d", true, "read", errors.New(`a "quoted" text`), 0o700)
	b = appendPlaceholder(b, "sys/p", 0o444)
	var got []record
	if err := parsePacked(b, func(r record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || string(got[0].data) != "a\x00b\n\x00" || got[1].err != syscall.EACCES || got[1].perm != 0o200 ||
		!got[2].dir || got[2].err.Error() != `a "quoted" text` || got[2].op != "read" || got[3].kind != recordPlaceholder {
		t.Errorf("parsed %+v", got)
	}
	for _, bad := range []string{"x", "sys/x", "sys/x =", "sys/x =+1\nx\n", "sys/x =01\nx\n", "sys/x =1\nxy", "sys/x !open EACCES", "sys/x !write EACCES 644\n",
		"sys/x !open \"unterminated 644\n", "sys/x !open \"\" 644\n", "sys/x ? 7777\n", "sys/x ? \n", "sys/x/ ? 644\n", "sys/x/ =0\n\n", "sys/x %\n"} {
		if err := parsePacked([]byte(bad), func(record) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("parsePacked(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

// FuzzRead feeds Read arbitrary archives: it must never panic, every error
// must wrap ErrCorrupt, and what it accepts must be a tree every read of
// which answers. The fuzzer mutates the tar; it is compressed before Read,
// so that mutations reach the tar and packed parsers rather than die in
// the zstd frame check.
func FuzzRead(f *testing.F) {
	f.Add(decompress(f, sample(f)))
	f.Add(decompress(f, rawArchive(f, good()...)))
	f.Add(decompress(f, rawArchive(f, with(reg("sys/a/b", "x"), reg("proc/1/task/1/stat", "1 (x) S"))...)))
	f.Add(decompress(f, rawArchive(f, append(good()[:3], reg("packed", "sys/x =1\nx\nsys/y !open EACCES 200\nsys/z/ !read \"x\" 700\nsys/w ? 444\n"))...)))
	f.Fuzz(func(t *testing.T, tarData []byte) {
		a, err := Read(bytes.NewReader(compress(t, tarData)), Limits{Total: 8 << 20, Entry: 4 << 20, Files: 10000})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		walk(t, a, "/", 0)
	})
}

func decompress(t testing.TB, b []byte) []byte {
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzParsePacked feeds the packed record parser directly.
func FuzzParsePacked(f *testing.F) {
	var b []byte
	b = appendData(b, "proc/1/cmdline", []byte("a\x00b"))
	b = appendError(b, "sys/f", true, "open", syscall.EACCES, 0o200)
	b = appendError(b, "sys/g", false, "read", errors.New("x"), 0o644)
	b = appendPlaceholder(b, "sys/p", 0o444)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out []byte
		err := parsePacked(data, func(r record) error {
			switch r.kind {
			case recordData:
				out = appendData(out, r.name, r.data)
			case recordError:
				out = appendError(out, r.name, r.dir, r.op, r.err, r.perm)
			default:
				out = appendPlaceholder(out, r.name, r.perm)
			}
			return nil
		})
		if err != nil {
			return
		}
		// What parses writes back the same way and parses again.
		var again []byte
		if err := parsePacked(out, func(r record) error {
			again = appendData(again, r.name, r.data)
			return nil
		}); err != nil {
			t.Fatalf("re-encoded records do not parse: %v\n%q", err, out)
		}
	})
}

// walk reads every file and directory below path.
func walk(t *testing.T, a *Archive, path string, depth int) {
	if depth > maxDepth+1 {
		t.Fatalf("%s: deeper than names may be", path)
	}
	ents, err := a.ReadDir(path)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := strings.TrimSuffix(path, "/") + "/" + e.Name()
		if _, err := a.Lstat(p); err != nil {
			t.Fatalf("lstat %s listed in its directory: %v", p, err)
		}
		if e.IsDir() {
			walk(t, a, p, depth+1)
			continue
		}
		if f, err := a.Open(p); err == nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
	}
}
