package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/klp-project/klp/e2e/twin"
)

// The guest side of the scenarios e2e/twin runs on both kernels: here the
// kernel is the real one and klp the installed binary.

// guestKernel is twin.Kernel on the booted kernel.
type guestKernel struct{ r *runner }

func (g guestKernel) ModuleFile(file string) string {
	path := filepath.Join("/tmp", file)
	src, err := os.ReadFile(moduleFile(twin.Patch))
	g.r.must(g.r.expectNoErr("copy-"+file, err, "read %s", moduleFile(twin.Patch)))
	g.r.must(g.r.expectNoErr("write-"+file, os.WriteFile(path, src, 0o644), "write %s", path))
	g.r.atCleanup(func() { _ = os.Remove(path) })
	return path
}

func (g guestKernel) Klp(args ...string) twin.Result {
	res := klp(args...)
	return twin.Result{Code: res.code, Stdout: res.stdout, Stderr: res.stderr}
}

func (g guestKernel) Patch(name string) twin.PatchState {
	p, err := readSysPatch(name)
	if err != nil {
		return twin.PatchState{}
	}
	return twin.PatchState{Exists: true, Enabled: p.enabled, Transition: p.transition}
}

func (g guestKernel) ModuleLoaded(name string) bool {
	loaded, _ := moduleLoaded(name)
	return loaded
}

func (g guestKernel) Settle(done func() bool) bool { return waitFor(10*time.Second, done) }

// twinT reports a twin scenario's checks as the runner's.
type twinT struct{ r *runner }

func (t twinT) Check(name string, ok bool, format string, args ...any) bool {
	return t.r.expect(name, ok, "%s", fmt.Sprintf(format, args...))
}

func (t twinT) Stop() { t.r.must(false) }

// twinScenarios are e2e/twin's scenarios, named twin-<name>.
func twinScenarios() []scenario {
	var ss []scenario
	for _, s := range twin.Scenarios() {
		run := s.Run
		ss = append(ss, scenario{"twin-" + s.Name, func(r *runner) { run(twinT{r}, guestKernel{r}) }})
	}
	return ss
}
