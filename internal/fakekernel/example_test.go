package fakekernel_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/klp-project/klp/internal/fakekernel"
)

// A livepatch's life cycle, driven the way the kernel would drive it.
func Example() {
	// In a test: k := fakekernel.New(t, fakekernel.Options{}).
	t := &exampleTB{}
	defer t.cleanup()
	k := fakekernel.New(t, fakekernel.Options{Tasks: []fakekernel.Task{
		{PID: 1, Comm: "systemd"}, {PID: 42, Comm: "kworker/0:1", Kthread: true},
	}})
	fs, _ := newFS(k)
	path := k.AddModule(t, fakekernel.Module{Name: "p", Livepatch: &fakekernel.Patch{
		Objects: []fakekernel.Object{{Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}}},
	}})
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(k.SysRoot(), rel))
		if err != nil {
			return "gone"
		}
		return strings.TrimSpace(string(b))
	}

	if _, err := fs.Load(path, ""); err != nil {
		panic(err)
	}
	k.BlockTask(42, "cmdline_proc_show") // the kworker sleeps in the function
	k.Tick()
	fmt.Println("transition:", read("kernel/livepatch/p/transition"), "kworker:", k.PatchState(42), "init:", k.PatchState(1))
	k.UnblockTask(42)
	k.Tick()
	fmt.Println("transition:", read("kernel/livepatch/p/transition"), "kworker:", k.PatchState(42))

	k.WriteAttr(filepath.Join(k.SysRoot(), "kernel/livepatch/p/enabled"), "0")
	k.Tick() // unpatching completes
	fmt.Println("enabled:", read("kernel/livepatch/p/enabled"), "refcnt:", read("module/p/refcnt"))
	k.Tick() // the asynchronous free
	fmt.Println("enabled:", read("kernel/livepatch/p/enabled"), "refcnt:", read("module/p/refcnt"))
	fmt.Println(fs.Unload("p", 0))
	// Output:
	// transition: 1 kworker: 0 init: 1
	// transition: 0 kworker: -1
	// enabled: 0 refcnt: 1
	// enabled: gone refcnt: 0
	// <nil>
}

// exampleTB is the minimum fakekernel needs outside a test function.
type exampleTB struct {
	dirs     []string
	cleanups []func()
}

func (*exampleTB) Helper() {}

func (*exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "fakekernel")
	if err != nil {
		panic(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}

func (e *exampleTB) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }

func (e *exampleTB) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}
