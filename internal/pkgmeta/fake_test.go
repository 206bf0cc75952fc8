package pkgmeta

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// reply is a fake program's answer.
type reply struct {
	out    string
	code   int // exit status; 0 is success
	stderr string
}

// fakeRunner answers commands from a table keyed by the command line
// (arguments joined by single spaces). A command not in the table fails the
// test: every external call pkgmeta makes must be expected.
type fakeRunner struct {
	t         testing.TB
	installed []string         // programs LookPath finds
	replies   map[string]reply // command line -> reply
	attach    func(stdio Stdio, argv []string) error

	mu    sync.Mutex
	calls []string
}

func newFake(t testing.TB, installed []string, replies map[string]reply) *fakeRunner {
	return &fakeRunner{t: t, installed: installed, replies: replies}
}

func (f *fakeRunner) LookPath(name string) (string, error) {
	for _, p := range f.installed {
		if p == name {
			return "/usr/bin/" + name, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func (f *fakeRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	f.mu.Lock()
	f.calls = append(f.calls, line)
	f.mu.Unlock()
	if _, err := f.LookPath(name); err != nil {
		f.t.Errorf("ran %q, which is not installed", line)
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	r, ok := f.replies[line]
	if !ok {
		f.t.Errorf("unexpected command %q", line)
		return nil, &ExitError{Name: name, Code: 127}
	}
	if r.code != 0 {
		return []byte(r.out), &ExitError{Name: name, Code: r.code, Stderr: r.stderr}
	}
	return []byte(r.out), nil
}

func (f *fakeRunner) Attach(ctx context.Context, stdio Stdio, name string, args ...string) error {
	argv := append([]string{name}, args...)
	f.mu.Lock()
	f.calls = append(f.calls, "attach: "+strings.Join(argv, " "))
	f.mu.Unlock()
	if f.attach == nil {
		f.t.Errorf("unexpected attached command %q", argv)
		return nil
	}
	return f.attach(stdio, argv)
}

func (f *fakeRunner) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// writeFiles creates files under root; a name ending in "/" is a directory,
// and "-> TARGET" content makes a symbolic link.
func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testConfig returns a Config rooted in a temporary directory: procfs with
// the given kernel release, module dirs, stores, lifecycle dirs and doc dir
// under it, all empty.
func testConfig(t testing.TB, r Runner, krel string) (Config, string) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"proc/sys/kernel/osrelease": krel + "\n",
		"lib/modules/":              "",
		"lifecycle/var/":            "",
		"lifecycle/share/":          "",
		"doc/":                      "",
	})
	return Config{
		Runner:        r,
		ProcRoot:      filepath.Join(root, "proc"),
		ModulesDirs:   []string{filepath.Join(root, "lib/modules")},
		StoreDirs:     []string{filepath.Join(root, "var/lib/klp"), filepath.Join(root, "var/lib/kpatch")},
		LifecycleDirs: []string{filepath.Join(root, "lifecycle/var"), filepath.Join(root, "lifecycle/share")},
		DocDir:        filepath.Join(root, "doc"),
	}, root
}
