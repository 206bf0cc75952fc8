package kmod_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
)

// Loading a livepatch module on the running system and explaining a
// refusal; then removing a disabled patch module. Needs root.
func Example() {
	live, err := kernel.OpenLive(kernel.Roots{})
	if err != nil {
		log.Fatal(err)
	}
	fs := kmod.NewLoader(live, kmod.Options{})
	res, err := fs.Load("/var/lib/klp/livepatch_fix.ko", "")
	var le *kmod.LoadError
	switch {
	case errors.Is(err, kmod.ErrBusy):
		log.Fatal("another livepatch transition is in progress; try again when it completes")
	case errors.As(err, &le):
		log.Fatalf("the kernel refused the module: %v\n%s", err, strings.Join(kmod.Messages(le.Log), "\n"))
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("loaded with", res.Method)

	// Later, after `echo 0 > /sys/kernel/livepatch/livepatch_fix/enabled`:
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fs.WaitRefcnt(ctx, "livepatch_fix", 0); err != nil && !errors.Is(err, kmod.ErrNotLoaded) {
		log.Fatal(err)
	}
	if err := fs.Unload("livepatch_fix", 0); err != nil {
		log.Fatal(err)
	}
}

// The same calls against internal/fakekernel, which is how klp's tests
// run them: here the kernel cannot resolve a symbol the patch replaces.
func ExampleLoader_Load() {
	tb := &exampleTB{}
	defer tb.cleanup()
	k := fakekernel.New(tb, fakekernel.Options{})
	k.SetSymbol("vmlinux", "cmdline_proc_show", 0)
	path := k.AddModule(tb, fakekernel.Module{Name: "livepatch_fix", Livepatch: &fakekernel.Patch{
		Objects: []fakekernel.Object{{Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}}},
	}})

	fs := k.Loader()
	_, err := fs.Load(path, "")
	fmt.Println(errors.Is(err, kmod.ErrInvalid))
	var le *kmod.LoadError
	if errors.As(err, &le) {
		for _, m := range le.KernelMessages() {
			fmt.Println(m)
		}
	}
	// Output:
	// true
	// livepatch: symbol 'cmdline_proc_show' not found in symbol table
}

func ExampleParseKmsg() {
	records := "5,1022,5100721,-;livepatch: enabling patch 'p'\n" +
		"6,1023,5200000,-;usb 1-1: new device\n" +
		" SUBSYSTEM=usb\n" +
		"3,1024,5300000,-;tab\\x09separated\n"
	recs, err := kmod.ParseKmsg(strings.NewReader(records))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%d %d %q\n", r.Seq, r.Level, r.Message)
	}
	// Output:
	// 1022 5 "livepatch: enabling patch 'p'"
	// 1023 6 "usb 1-1: new device"
	// 1024 3 "tab\tseparated"
}

func ExampleNormalizeName() {
	fmt.Println(kmod.NormalizeName("/lib/modules/6.12.0/updates/livepatch-fix-1.ko.xz"))
	// Output: livepatch_fix_1
}

// exampleTB is the minimum fakekernel needs outside a test function.
type exampleTB struct {
	dirs     []string
	cleanups []func()
}

func (*exampleTB) Helper() {}

func (*exampleTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }

func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "fakekernel")
	if err != nil {
		log.Fatal(err)
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
