package kmod

import (
	"errors"
	"fmt"
	"github.com/klp-project/klp/kernel"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// scripted is a Syscalls that returns queued results and records calls.
type scripted struct {
	finit, init, del []error
	calls            []string
}

func pop(q *[]error) error {
	if len(*q) == 0 {
		return nil
	}
	err := (*q)[0]
	*q = (*q)[1:]
	return err
}

func (s *scripted) FinitModule(fd int, params string, flags int) error {
	s.calls = append(s.calls, fmt.Sprintf("finit(%q, %#x)", params, flags))
	return pop(&s.finit)
}

func (s *scripted) InitModule(image []byte, params string) error {
	s.calls = append(s.calls, fmt.Sprintf("init(%q, %q)", image, params))
	return pop(&s.init)
}

func (s *scripted) DeleteModule(name string, flags int) error {
	s.calls = append(s.calls, fmt.Sprintf("delete(%q, %#x)", name, flags))
	return pop(&s.del)
}

// memKmsg is a KmsgSource that hands out fixed records.
type memKmsg struct {
	records string
	err     error
}

func (m memKmsg) OpenKmsg() (io.ReadCloser, error) {
	if m.err != nil {
		return nil, m.err
	}
	return io.NopCloser(strings.NewReader(m.records)), nil
}

type loadEnv struct {
	fs  *Loader
	sc  *scripted
	dir string
}

// simulated returns a Live handle on dir's proc and sys whose module
// syscalls and attribute writes go to the given seams.
func simulated(t *testing.T, dir string, sc kernel.ModuleSyscalls, attr kernel.AttrWriter) *kernel.Live {
	t.Helper()
	h, err := kernel.Open(kernel.Roots{Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys"), Dev: filepath.Join(dir, "dev")})
	if err != nil {
		t.Fatal(err)
	}
	return kernel.Simulate(h, kernel.Seams{Modules: sc, Attr: attr})
}

func newLoadEnv(t *testing.T, kernelCompression string, kmsg KmsgSource) *loadEnv {
	dir := t.TempDir()
	for _, d := range []string{"proc", "sys/module"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if kernelCompression != "" {
		os.WriteFile(filepath.Join(dir, "sys/module/compression"), []byte(kernelCompression+"\n"), 0o444)
	}
	sc := &scripted{}
	if kmsg == nil {
		kmsg = memKmsg{}
	}
	fs := NewLoader(simulated(t, dir, sc, nil), Options{
		Kmsg: kmsg,
		Decompress: func(path string, limit int64) ([]byte, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			return append([]byte("unpacked:"), b[6:]...), nil
		},
	})
	return &loadEnv{fs: fs, sc: sc, dir: dir}
}

func (e *loadEnv) file(t *testing.T, name string, content string) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const xzMagic = "\xfd7zXZ\x00"

func TestLoadPaths(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kernelComp string
		content    string
		flags      int
		finit      []error
		init       []error
		wantCalls  []string
		wantMethod Method
		wantErr    error
	}{
		{name: "finit", content: "\x7fELF", wantCalls: []string{`finit("p=1", 0x0)`}, wantMethod: MethodFinit},
		{name: "finit ENOSYS falls back to init_module", content: "\x7fELFbody", finit: []error{unix.ENOSYS},
			wantCalls: []string{`finit("p=1", 0x0)`, `init("\x7fELFbody", "p=1")`}, wantMethod: MethodInit},
		{name: "finit error is not retried", content: "\x7fELF", finit: []error{unix.EINVAL},
			wantCalls: []string{`finit("p=1", 0x0)`}, wantMethod: MethodFinit, wantErr: ErrInvalid},
		{name: "compressed, kernel format matches", kernelComp: "xz", content: xzMagic + "x",
			wantCalls: []string{`finit("p=1", 0x4)`}, wantMethod: MethodFinitCompressed},
		{name: "compressed, kernel format matches, EINVAL is the module's", kernelComp: "xz", content: xzMagic + "x",
			finit: []error{unix.EINVAL}, wantCalls: []string{`finit("p=1", 0x4)`}, wantMethod: MethodFinitCompressed, wantErr: ErrInvalid},
		{name: "compressed, kernel format matches, EOPNOTSUPP", kernelComp: "xz", content: xzMagic + "x",
			finit:     []error{unix.EOPNOTSUPP},
			wantCalls: []string{`finit("p=1", 0x4)`, `init("unpacked:x", "p=1")`}, wantMethod: MethodInit},
		{name: "compressed, kernel decompresses another format", kernelComp: "zstd", content: xzMagic + "x",
			wantCalls: []string{`init("unpacked:x", "p=1")`}, wantMethod: MethodInit},
		{name: "compressed, unknown kernel support, flag refused", content: xzMagic + "x", finit: []error{unix.EINVAL},
			wantCalls: []string{`finit("p=1", 0x4)`, `init("unpacked:x", "p=1")`}, wantMethod: MethodInit},
		{name: "compressed, unknown kernel support, ENOSYS", content: xzMagic + "x", finit: []error{unix.ENOSYS},
			init:      []error{unix.EEXIST},
			wantCalls: []string{`finit("p=1", 0x4)`, `init("unpacked:x", "p=1")`}, wantMethod: MethodInit, wantErr: ErrAlreadyLoaded},
		{name: "compressed, unknown kernel support, works", content: xzMagic + "x",
			wantCalls: []string{`finit("p=1", 0x4)`}, wantMethod: MethodFinitCompressed},
		{name: "fallback cannot carry ignore flags", content: xzMagic + "x", kernelComp: "gzip", flags: unix.MODULE_INIT_IGNORE_VERMAGIC,
			wantMethod: MethodInit, wantErr: ErrInitFlags},
		{name: "ignore flags are passed to finit", content: "\x7fELF", flags: unix.MODULE_INIT_IGNORE_MODVERSIONS,
			wantCalls: []string{`finit("p=1", 0x1)`}, wantMethod: MethodFinit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLoadEnv(t, tc.kernelComp, nil)
			e.sc.finit, e.sc.init = tc.finit, tc.init
			res, err := e.fs.LoadFlags(e.file(t, "m.ko", tc.content), "p=1", tc.flags)
			if diff := cmp.Diff(tc.wantCalls, e.sc.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if tc.wantErr != nil {
				var le *LoadError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &le) {
					t.Fatalf("err = %v, want %v in a *LoadError", err, tc.wantErr)
				}
				if le.Method != tc.wantMethod {
					t.Errorf("method %s, want %s", le.Method, tc.wantMethod)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != tc.wantMethod {
				t.Errorf("method %s, want %s", res.Method, tc.wantMethod)
			}
		})
	}
}

func TestLoadOpenError(t *testing.T) {
	e := newLoadEnv(t, "", nil)
	_, err := e.fs.Load(filepath.Join(e.dir, "missing.ko"), "")
	var le *LoadError
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &le) {
		t.Errorf("err = %v", err)
	}
	if len(e.sc.calls) != 0 {
		t.Errorf("calls %v", e.sc.calls)
	}
}

func TestLoadKmsg(t *testing.T) {
	recs := "5,10,100,-;livepatch: enabling patch 'p'\n" +
		"3,11,101,-;livepatch: symbol 'a' not found in symbol table\n" +
		"4,12,102,-;livepatch: failed to enable patch 'p'\n" +
		"6,13,103,-;unrelated info\n" +
		"3,14,104,-;e1\n3,15,105,-;e2\n"
	e := newLoadEnv(t, "", memKmsg{records: recs})
	e.sc.finit = []error{unix.EINVAL}
	_, err := e.fs.Load(e.file(t, "p.ko", "\x7fELF"), "")
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v", err)
	}
	if len(le.Log) != 6 || le.LogErr != nil {
		t.Errorf("log %d records, err %v", len(le.Log), le.LogErr)
	}
	want := []string{"livepatch: symbol 'a' not found in symbol table", "livepatch: failed to enable patch 'p'", "e1", "e2"}
	if diff := cmp.Diff(want, le.KernelMessages()); diff != "" {
		t.Errorf("kernel messages (-want +got):\n%s", diff)
	}
	wantMsg := "invalid module or parameters: load " + filepath.Join(e.dir, "p.ko") +
		": invalid argument (kernel: livepatch: failed to enable patch 'p'; e1; e2)"
	if err.Error() != wantMsg {
		t.Errorf("message\n got %s\nwant %s", err, wantMsg)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("errno not reachable")
	}
}

func TestLoadKmsgUnavailable(t *testing.T) {
	e := newLoadEnv(t, "", DevKmsg{Path: "/nonexistent/kmsg"})
	res, err := e.fs.Load(e.file(t, "p.ko", "\x7fELF"), "")
	if err != nil {
		t.Fatalf("an unreadable kernel log must not fail the load: %v", err)
	}
	if !errors.Is(res.LogErr, ErrKmsgUnavailable) || res.Log != nil {
		t.Errorf("LogErr %v, Log %v", res.LogErr, res.Log)
	}
	e.sc.finit = []error{unix.EBUSY}
	_, err = e.fs.Load(e.file(t, "p.ko", "\x7fELF"), "")
	var le *LoadError
	if !errors.As(err, &le) || !errors.Is(le.LogErr, ErrKmsgUnavailable) || err.Error() != le.Err.Error() {
		t.Errorf("err = %v", err)
	}
}

func TestUnload(t *testing.T) {
	e := newLoadEnv(t, "", nil)
	e.sc.del = []error{nil, unix.EAGAIN}
	if err := e.fs.Unload("test-klp", 0); err != nil {
		t.Fatal(err)
	}
	err := e.fs.Unload("test_klp", unix.O_TRUNC)
	if !errors.Is(err, ErrInUse) || !errors.Is(err, unix.EAGAIN) {
		t.Errorf("err = %v", err)
	}
	want := []string{`delete("test_klp", 0x800)`, `delete("test_klp", 0xa00)`}
	if diff := cmp.Diff(want, e.sc.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if err := e.fs.Unload("../x", 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad name: %v", err)
	}
}
