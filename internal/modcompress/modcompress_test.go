package modcompress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// The modules built in modinfo/testdata (see its README) are the real
// inputs: the same module plain and compressed as kbuild does it.
const modDir = "../../modinfo/testdata"

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadFile(t *testing.T) {
	t.Parallel()
	plain := read(t, filepath.Join(modDir, "klp_vmlinux.ko"))
	for _, tc := range []struct {
		path string
		kind Kind
		want []byte
	}{
		{filepath.Join(modDir, "klp_vmlinux.ko"), None, plain},
		{filepath.Join(modDir, "klp_vmlinux.ko.xz"), XZ, plain},
		{filepath.Join(modDir, "klp_vmlinux.ko.zst"), Zstd, plain},
		{filepath.Join(modDir, "klp_vmlinux.ko.gz"), Gzip, plain},
		// xz variants the framing walk must get through: several blocks and a
		// CRC64 check, SHA-256, no check, two streams with padding between.
		{"testdata/multiblock.xz", XZ, plain},
		{"testdata/sha256.xz", XZ, plain},
		{"testdata/nocheck.xz", XZ, plain},
		{"testdata/multistream.xz", XZ, append(bytes.Clone(plain), plain...)},
	} {
		got, err := ReadFile(tc.path, 0)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", tc.path, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("ReadFile(%s): %d bytes, want %d", tc.path, len(got), len(tc.want))
		}
		if k := Compressed(read(t, tc.path)); k != tc.kind {
			t.Errorf("Compressed(%s) = %v, want %v", tc.path, k, tc.kind)
		}
		// The streaming reader gives the same bytes.
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		rc, kind, err := NewReader(f, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(rc)
		rc.Close()
		f.Close()
		if err != nil || kind != tc.kind || !bytes.Equal(got, tc.want) {
			t.Errorf("NewReader(%s): kind %v, %d bytes, %v", tc.path, kind, len(got), err)
		}
	}
	if _, err := ReadFile("testdata/missing", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v", err)
	}
}

func compress(t testing.TB, kind Kind, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case Gzip:
		w = gzip.NewWriter(&buf)
	case XZ:
		w, err = xz.WriterConfig{DictCap: 1 << 20}.NewWriter(&buf)
	case Zstd:
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A small file that expands past the limit fails with ErrTooLarge, for every
// format, and an image of exactly the limit is fine.
func TestBomb(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	zeros := make([]byte, 4<<20)
	for _, kind := range []Kind{Gzip, XZ, Zstd} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			bomb := compress(t, kind, zeros)
			_, _, err := Decompress(bomb, limit)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("Decompress(%d-byte bomb) = %v, want ErrTooLarge", len(bomb), err)
			}
			exact := compress(t, kind, zeros[:limit])
			got, _, err := Decompress(exact, limit)
			if err != nil || len(got) != limit {
				t.Errorf("Decompress(exactly the limit) = %d bytes, %v", len(got), err)
			}
		})
	}
	if _, _, err := Decompress(zeros, limit); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decompress(plain over the limit) = %v", err)
	}
	p := filepath.Join(t.TempDir(), "big.ko")
	if err := os.WriteFile(p, zeros, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p, limit); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadFile(big) = %v, want ErrTooLarge naming the file", err)
	}
}

// An xz block header asking for a huge dictionary is refused before the
// decoder allocates it.
func TestXZHugeDictionary(t *testing.T) {
	t.Parallel()
	b := bytes.Clone(read(t, filepath.Join(modDir, "klp_vmlinux.ko.xz")))
	// Stream header (12 bytes), then the block header: size, flags, filter
	// id 0x21 (LZMA2), properties size 1, the dictionary byte.
	if b[12+2] != 0x21 || b[12+3] != 1 {
		t.Fatalf("unexpected block header % x", b[12:20])
	}
	b[12+4] = 40 // 4 GiB - 1
	_, _, err := Decompress(b, 0)
	if err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Errorf("Decompress = %v, want a dictionary size error", err)
	}
	if got := lzma2Dict(40); got != 1<<32-1 {
		t.Errorf("lzma2Dict(40) = %d", got)
	}
	if got := lzma2Dict(16); got != 1<<20 { // kbuild's --lzma2=dict=1MiB
		t.Errorf("lzma2Dict(16) = %d", got)
	}
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"klp_vmlinux.ko.xz", "klp_vmlinux.ko.zst", "klp_vmlinux.ko.gz"} {
		b := read(t, filepath.Join(modDir, name))
		for _, cut := range []int{len(b) / 2, len(b) - 1, 7} {
			if got, _, err := Decompress(b[:cut], 0); err == nil {
				t.Errorf("Decompress(%s cut at %d) = %d bytes, want an error", name, cut, len(got))
			}
		}
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]string{None: "none", Gzip: "gzip", XZ: "xz", Zstd: "zstd", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q", k, got)
		}
	}
}

// tools are the command-line decompressors the fuzz test compares with:
// the programs kbuild compresses modules with, independent of the Go
// decoders.
var tools = map[Kind][]string{Gzip: {"gzip", "-dc"}, XZ: {"xz", "-dc"}, Zstd: {"zstd", "-dcq"}}

// reference decompresses b with the command-line tool of kind. It reads at
// most max bytes of the tool's output and then stops the tool: a bomb
// costs nothing.
func reference(t *testing.T, kind Kind, b []byte, max int) ([]byte, error) {
	t.Helper()
	argv := tools[kind]
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Skipf("no reference decompressor for %v: %v", kind, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(b), &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, rerr := io.ReadAll(io.LimitReader(stdout, int64(max)))
	if len(out) == max {
		_ = cmd.Process.Kill() // enough to tell: the tool's output is longer
	}
	if err := cmd.Wait(); err != nil && len(out) < max {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return out, rerr
}

// FuzzDecompress: whatever the input, the image stays within the limit,
// and an image Decompress returns is what the format's own command-line
// tool makes of the same bytes, byte for byte.
func FuzzDecompress(f *testing.F) {
	for _, p := range []string{"klp_vmlinux.ko.xz", "klp_vmlinux.ko.zst", "klp_vmlinux.ko.gz"} {
		f.Add(read(f, filepath.Join(modDir, p)))
	}
	for _, p := range []string{"testdata/multiblock.xz", "testdata/multistream.xz"} {
		f.Add(read(f, p))
	}
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte) {
		out, kind, err := Decompress(b, limit)
		if err != nil || kind == None {
			if err == nil && !bytes.Equal(out, b) {
				t.Fatalf("an uncompressed input came back changed")
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("%d bytes past the limit", len(out))
		}
		want, rerr := reference(t, kind, b, len(out)+1)
		if rerr != nil {
			t.Fatalf("Decompress accepted %d bytes of %v (%d out) that the reference refuses: %v", len(b), kind, len(out), rerr)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%v: Decompress gave %d bytes, the reference %d, and they differ", kind, len(out), len(want))
		}
	})
}

// An uncompressed image of exactly the limit is returned; one byte more is
// too large.
func TestDecompressPlainLimit(t *testing.T) {
	t.Parallel()
	b := bytes.Repeat([]byte{'x'}, 10)
	if got, kind, err := Decompress(b, 10); err != nil || kind != None || !bytes.Equal(got, b) {
		t.Errorf("Decompress(10 bytes, limit 10) = %d bytes, %v, %v", len(got), kind, err)
	}
	if _, _, err := Decompress(append(b, 'x'), 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decompress(11 bytes, limit 10) = %v, want ErrTooLarge", err)
	}
}

// The Read that crosses the limit hands over exactly the bytes up to the
// limit, with ErrTooLarge.
func TestReaderCrossingLimit(t *testing.T) {
	t.Parallel()
	in := []byte("0123456789abcdefghij")
	rc, _, err := NewReader(bytes.NewReader(in), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 100)
	n, err := rc.Read(buf)
	if n != 10 || !errors.Is(err, ErrTooLarge) || !bytes.Equal(buf[:n], in[:10]) {
		t.Errorf("Read = %d (%q), %v; want 10 (%q), ErrTooLarge", n, buf[:max(n, 0)], err, in[:10])
	}
	if n, err := rc.Read(buf); n != 0 || !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read after the limit = %d, %v", n, err)
	}
}

// A file whose Stat fails is an error, not a crash.
func TestReadAllLimitClosedFile(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(modDir, "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := ReadAllLimit(f, 1<<20); err == nil {
		t.Errorf("ReadAllLimit(closed file) = %d bytes, want an error", len(b))
	}
}

// A regular file of up to the limit is read into one buffer sized from its
// Stat, not into a buffer grown while reading. A file of exactly the limit
// and of a whole number of pages is the tightest case.
func TestReadAllLimitOneBuffer(t *testing.T) {
	const size = 1 << 20
	p := filepath.Join(t.TempDir(), "m.ko")
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b []byte
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if b, err = ReadAllLimit(f, size); err != nil {
			t.Fatal(err)
		}
	})
	if len(b) != size {
		t.Fatalf("ReadAllLimit = %d bytes, want %d", len(b), size)
	}
	// One buffer costs 4 allocations (5 under -race); growing one from
	// 512 bytes to 1 MiB costs about 15.
	if allocs > 8 {
		t.Errorf("ReadAllLimit(1 MiB file) made %v allocations, want one buffer", allocs)
	}
}
