// Package twin holds scenarios written once and run on two kernels: the
// test double of internal/fakekernel (a unit test, in every make unit) and
// a real kernel in QEMU (the e2e guest). The fake is held to what the real
// kernel does (docs/fakekernel.md); a scenario that passes on one and fails
// on the other shows where the fake is wrong.
//
// A scenario drives klp's command line and reads the kernel's own state
// through a [Kernel]; it never compares klp with itself.
package twin

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Result is what a klp command did.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// PatchState is what /sys/kernel/livepatch/<patch> shows.
type PatchState struct {
	Exists              bool
	Enabled, Transition int
}

// Patch is the module name of the live patch the scenarios load: the
// suite's patch of cmdline_proc_show.
const Patch = "klp_e2e_cmdline"

// Kernel is one of the two kernels.
type Kernel interface {
	// ModuleFile returns the path of a copy of [Patch]'s module file,
	// named file (its module name stays Patch).
	ModuleFile(file string) string
	// Klp runs klp with args.
	Klp(args ...string) Result
	// Patch reads the patch's directory under /sys/kernel/livepatch.
	Patch(name string) PatchState
	// ModuleLoaded reports whether /proc/modules lists the module.
	ModuleLoaded(name string) bool
	// Settle lets the kernel finish what it does asynchronously (free a
	// disabled patch), waiting at most a few seconds.
	Settle(done func() bool) bool
}

// T reports checks.
type T interface {
	// Check records a check; it returns ok.
	Check(name string, ok bool, format string, args ...any) bool
	// Stop ends the scenario after a failed step the rest depends on.
	Stop()
}

// Scenario is one story.
type Scenario struct {
	Name string
	Run  func(t T, k Kernel)
}

// Scenarios are the stories both kernels run.
func Scenarios() []Scenario {
	return []Scenario{
		{"names", Names},
		{"json-outcomes", JSONOutcomes},
	}
}

// Names: a patch typed with '-' is the patch whose module name has '_'
// (kbuild and klp-build name modules that way): a dashed file loads, and
// wait, disable and unload take the dashed name.
func Names(t T, k Kernel) {
	dashed := strings.ReplaceAll(Patch, "_", "-")
	file := k.ModuleFile(dashed + ".ko")
	r := k.Klp("load", file)
	p := k.Patch(Patch)
	if !t.Check("load-dashed-file", r.Code == 0 && p.Exists && p.Enabled == 1 && p.Transition == 0 && !k.Patch(dashed).Exists,
		"the patch is %s in sysfs, enabled, its transition done; %v; %+v", Patch, r, p) {
		t.Stop()
	}
	r = k.Klp("wait", dashed)
	t.Check("wait-dashed", r.Code == 0, "%v", r)
	r = k.Klp("disable", dashed)
	gone := k.Settle(func() bool { return !k.Patch(Patch).Exists })
	t.Check("disable-dashed", r.Code == 0 && gone, "disabled and freed (directory gone %v); %v", gone, r)
	r = k.Klp("unload", dashed)
	t.Check("unload-dashed", r.Code == 0 && !k.ModuleLoaded(Patch), "the module is gone from /proc/modules; %v", r)
}

// JSONOutcomes: the outcome documents of a load and an unload say what the
// kernel shows.
func JSONOutcomes(t T, k Kernel) {
	file := k.ModuleFile(Patch + ".ko")
	var o struct {
		SchemaVersion int     `json:"schema_version"`
		Action        string  `json:"action"`
		Patch         *string `json:"patch"`
		File          *string `json:"file"`
		Result        string  `json:"result"`
		ExitCode      int     `json:"exit_code"`
		Error         *string `json:"error"`
	}
	r := k.Klp("--json", "load", file)
	err := json.Unmarshal([]byte(r.Stdout), &o)
	p := k.Patch(Patch)
	t.Check("load", err == nil && r.Code == 0 && o.SchemaVersion == 2 && o.Action == "load" && o.Patch != nil && *o.Patch == Patch &&
		o.File != nil && *o.File == file && o.Result == "patched" && o.ExitCode == 0 && o.Error == nil && p.Exists && p.Enabled == 1 && p.Transition == 0,
		"decode error %v; %v; kernel %+v", err, r, p)
	r = k.Klp("--json", "unload", Patch)
	o.Patch, o.File, o.Error = nil, nil, nil
	err = json.Unmarshal([]byte(r.Stdout), &o)
	t.Check("unload", err == nil && r.Code == 0 && o.Action == "unload" && o.Result == "removed" && o.File == nil &&
		!k.Patch(Patch).Exists && !k.ModuleLoaded(Patch), "decode error %v; %v", err, r)
	r = k.Klp("--json", "unload", Patch)
	o.Error = nil
	err = json.Unmarshal([]byte(r.Stdout), &o)
	t.Check("unload-again", err == nil && r.Code == 1 && o.Result == "failed" && o.Error != nil && strings.Contains(*o.Error, "no such patch"),
		"a patch that is not loaded is an error, never removed; decode error %v; %v", err, r)
}
