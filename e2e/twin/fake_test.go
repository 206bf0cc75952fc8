package twin_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/twin"
	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/modinfo"
)

const release = "6.12.0-fake"

// fake is the fake kernel side of the twin scenarios.
type fake struct {
	t     *testing.T
	k     *fakekernel.Kernel
	env   *cli.Env
	specs map[string]*modinfo.Module
	dir   string
}

func newFake(t *testing.T) *fake {
	k := fakekernel.New(t, fakekernel.Options{AutoTick: 2 * time.Millisecond})
	if err := os.WriteFile(filepath.Join(k.ProcRoot(), "sys", "kernel", "osrelease"), []byte(release+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k.SetSymbol("vmlinux", "cmdline_proc_show", 1)
	f := &fake{t: t, k: k, specs: map[string]*modinfo.Module{}, dir: t.TempDir()}
	f.env = &cli.Env{
		Getpid: os.Getpid, Getppid: os.Getppid, Getpgrp: func() int { return -1 },
		Sleep:    time.Sleep,
		Geteuid:  func() int { return 0 },
		Kmod:     k.KmodOptions(),
		OpenLive: func(kernel.Roots) (*kernel.Live, error) { return k.Live(), nil },
		LockPath: filepath.Join(f.dir, "klp.lock"),
		Store:    store.Store{Dir: filepath.Join(f.dir, "store")},
		Inspect: func(path string) (*modinfo.Module, error) {
			if m, ok := f.specs[path]; ok {
				return m, nil
			}
			return nil, os.ErrNotExist
		},
	}
	return f
}

func (f *fake) ModuleFile(file string) string {
	path := filepath.Join(f.dir, file)
	// A file of its own: klp keys what it loads by the file's identity.
	if err := os.WriteFile(path, []byte("\x7fELF twin "+file+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.k.AddModuleFile(f.t, path, fakekernel.Module{Name: twin.Patch, Livepatch: &fakekernel.Patch{
		Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}}},
	}})
	f.specs[path] = &modinfo.Module{Name: twin.Patch, Livepatch: true, Vermagic: release + " SMP preempt mod_unload "}
	return path
}

func (f *fake) Klp(args ...string) twin.Result {
	var out, errOut bytes.Buffer
	env := *f.env
	env.IO = &cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	code := cli.Run(append([]string{"klp", "--sysfs", f.k.SysRoot(), "--procfs", f.k.ProcRoot()}, args...), &env)
	return twin.Result{Code: int(code), Stdout: out.String(), Stderr: errOut.String()}
}

func (f *fake) Patch(name string) twin.PatchState {
	dir := filepath.Join(f.k.SysRoot(), "kernel", "livepatch", name)
	read := func(attr string) int {
		b, err := os.ReadFile(filepath.Join(dir, attr))
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	if _, err := os.Stat(dir); err != nil {
		return twin.PatchState{}
	}
	return twin.PatchState{Exists: true, Enabled: read("enabled"), Transition: read("transition")}
}

func (f *fake) ModuleLoaded(name string) bool { return f.k.Loaded(name) }

func (f *fake) Settle(done func() bool) bool {
	for range 1000 {
		if done() {
			return true
		}
		f.k.Tick()
	}
	return done()
}

// checker reports a scenario's checks as subtests.
type checker struct{ t *testing.T }

type stop struct{}

func (c checker) Check(name string, ok bool, format string, args ...any) bool {
	c.t.Run(name, func(t *testing.T) {
		if !ok {
			t.Errorf(format, args...)
		}
	})
	return ok
}

func (c checker) Stop() { panic(stop{}) }

// TestOnTheFakeKernel runs every twin scenario on the fake kernel; the e2e
// guest runs the same ones on Debian's kernels.
func TestOnTheFakeKernel(t *testing.T) {
	for _, s := range twin.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil && r != (stop{}) {
					panic(r)
				} else if r != nil {
					t.Logf("%s stopped after a failed step", s.Name)
				}
			}()
			s.Run(checker{t}, newFake(t))
		})
	}
}
