package ftrace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/kernel"
)

// tree builds a sysfs and procfs root with the given files below sys.
func tree(t *testing.T, files map[string]string) *kernel.Handle {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"sys", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for rel, content := range files {
		p := filepath.Join(root, "sys", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if content == "/" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type fakeBPF []kernel.BPFLink

func (f fakeBPF) BPFLinks() ([]kernel.BPFLink, error) { return f, nil }

func TestRead(t *testing.T) {
	h := tree(t, map[string]string{
		"kernel/tracing/enabled_functions":      enabled612,
		"kernel/debug/kprobes/list":             "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n",
		"kernel/debug/fail_function/inject":     "",
		"kernel/debug/fail_function/open_ctree": "/",
	})
	link := kernel.BPFLink{ID: 1, Attach: kernel.AttachFexit, Object: "vmlinux", Function: "schedule_timeout_interruptible"}
	fs := New(h.WithBPF(fakeBPF{link}))
	s := fs.Read(context.Background(), func(n string) bool { return n != "klp_e2e_target_work" })
	if s.EnabledErr != nil || s.KprobesErr != nil || s.FailErr != nil || s.BPFErr != nil {
		t.Fatalf("errors: %v %v %v %v", s.EnabledErr, s.KprobesErr, s.FailErr, s.BPFErr)
	}
	if len(s.Enabled) != 3 || len(s.Kprobes) != 1 || !cmp.Equal(s.FailFunctions, []string{"open_ctree"}) || len(s.BPF) != 1 {
		t.Errorf("read %d entries, %d kprobes, fail_function %v, %d links", len(s.Enabled), len(s.Kprobes), s.FailFunctions, len(s.BPF))
	}
	if want := h.SysPath("kernel", "tracing", "enabled_functions"); s.EnabledPath != want {
		t.Errorf("enabled_functions at %s, want %s", s.EnabledPath, want)
	}
}

func TestReadMissing(t *testing.T) {
	h := tree(t, map[string]string{"kernel/debug/tracing/enabled_functions": ""})
	fs := New(h)
	// tracefs found under debugfs, the automount of kernels before 4.1.
	if want := h.SysPath("kernel", "debug", "tracing", "enabled_functions"); fs.EnabledFunctionsPath() != want {
		t.Errorf("enabled_functions at %s, want %s", fs.EnabledFunctionsPath(), want)
	}
	if got := fs.TracingFile("available_filter_functions"); got != h.SysPath("kernel", "tracing", "available_filter_functions") {
		t.Errorf("a file found nowhere is looked for in tracefs's own mount point, got %s", got)
	}
	s := fs.Read(context.Background(), nil)
	if s.EnabledErr != nil || len(s.Enabled) != 0 {
		t.Errorf("empty enabled_functions: %v %v", s.Enabled, s.EnabledErr)
	}
	if !errors.Is(s.KprobesErr, os.ErrNotExist) {
		t.Errorf("kprobes list: %v, want not exist", s.KprobesErr)
	}
	if s.FailErr != nil || s.FailFunctions != nil {
		t.Errorf("no fail_function directory: %v %v, want nothing", s.FailFunctions, s.FailErr)
	}
	if !errors.Is(s.BPFErr, kernel.ErrNotLive) {
		t.Errorf("BPF on a copied tree: %v, want ErrNotLive", s.BPFErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fs.EnabledFunctions(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
}
