package ftrace

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"sort"

	"github.com/klp-project/klp/kernel"
)

// FS reads a kernel's ftrace, kprobe and BPF state through a
// [kernel.Handle]. tracefs, debugfs and the bpf(2) system call are root's:
// without privilege every read fails with an error wrapping
// [iofs.ErrPermission].
type FS struct {
	k *kernel.Handle
}

// New returns the ftrace view of the kernel h stands for.
func New(h *kernel.Handle) FS { return FS{k: h} }

// TracingFile returns a tracefs file from where tracefs is found: its own
// mount point <sysfs>/kernel/tracing (4.1+), else the automount under
// debugfs.
func (fs FS) TracingFile(name string) string {
	for _, p := range []string{fs.k.SysPath("kernel", "tracing", name), fs.k.SysPath("kernel", "debug", "tracing", name)} {
		if fs.k.Exists(p) {
			return p
		}
	}
	return fs.k.SysPath("kernel", "tracing", name)
}

// EnabledFunctionsPath is tracefs's enabled_functions.
func (fs FS) EnabledFunctionsPath() string { return fs.TracingFile("enabled_functions") }

// KprobesPath is <debugfs>/kprobes/list.
func (fs FS) KprobesPath() string { return fs.k.SysPath("kernel", "debug", "kprobes", "list") }

// FailFunctionPath is <debugfs>/fail_function, where each function with
// an error injection has a directory.
func (fs FS) FailFunctionPath() string { return fs.k.SysPath("kernel", "debug", "fail_function") }

// EnabledFunctions reads enabled_functions, keeping the functions want
// accepts (nil: all). ctx stops a long read.
func (fs FS) EnabledFunctions(ctx context.Context, want func(string) bool) ([]Entry, error) {
	f, err := fs.k.Open(fs.EnabledFunctionsPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseEnabledFunctions(ctxReader{ctx, f}, want)
}

// Kprobes reads the kprobe list.
func (fs FS) Kprobes(ctx context.Context) ([]Kprobe, error) {
	f, err := fs.k.Open(fs.KprobesPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseKprobes(ctxReader{ctx, f})
}

// FailFunctions lists the functions fail_function injects errors into;
// none when debugfs has no fail_function directory (a kernel without
// CONFIG_FAIL_FUNCTION, such as Debian's).
func (fs FS) FailFunctions() ([]string, error) {
	entries, err := fs.k.ReadDir(fs.FailFunctionPath())
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// BPFLinks lists the BPF programs attached to kernel functions (the
// running kernel only; see [kernel.Handle.BPFLinks]).
func (fs FS) BPFLinks() ([]kernel.BPFLink, error) { return fs.k.BPFLinks() }

// Read reads everything [Users] looks at for the functions in want: each
// source's error is kept, none stops the others.
func (fs FS) Read(ctx context.Context, want func(string) bool) State {
	var s State
	s.EnabledPath, s.KprobesPath = fs.EnabledFunctionsPath(), fs.KprobesPath()
	s.Enabled, s.EnabledErr = fs.EnabledFunctions(ctx, want)
	s.Kprobes, s.KprobesErr = fs.Kprobes(ctx)
	s.FailFunctions, s.FailErr = fs.FailFunctions()
	s.BPF, s.BPFErr = fs.BPFLinks()
	return s
}

// ctxReader stops a long read when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if c.ctx != nil {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
	}
	return c.r.Read(p)
}
