package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// The JSON documents of klp --json (docs/json.md), as far as the suite
// compares them with the kernel. Their shape, schema_version included, is
// checked against docs/schema for every command (schema.go).

type jsonTransition struct {
	Patch  *string `json:"patch"`
	Target string  `json:"target"`
}

type jsonStatus struct {
	SchemaVersion      int             `json:"schema_version"`
	Status             string          `json:"status"`
	Interface          string          `json:"interface"`
	LivepatchSupported bool            `json:"livepatch_supported"`
	Transition         *jsonTransition `json:"transition"`
}

type jsonPatches struct {
	SchemaVersion int         `json:"schema_version"`
	Patches       []jsonPatch `json:"patches"`
}

type jsonPatch struct {
	Name       string       `json:"name"`
	Enabled    *bool        `json:"enabled"`
	Transition *bool        `json:"transition"`
	Replace    *bool        `json:"replace"`
	ReplaceSet *int         `json:"replace_set"`
	StackOrder *int         `json:"stack_order"`
	Objects    []jsonObject `json:"objects"`
	// Optional extras of klp's schema; compared when present.
	Active    *bool `json:"active"`
	HasForce  *bool `json:"has_force"`
	HasSignal *bool `json:"has_signal"`
}

type jsonObject struct {
	Name      string     `json:"name"`
	Patched   *bool      `json:"patched"`
	Functions []jsonFunc `json:"functions"`
}

type jsonFunc struct {
	Name   string `json:"name"`
	Sympos int    `json:"sympos"`
}

type jsonBlocking struct {
	SchemaVersion int              `json:"schema_version"`
	Transition    *jsonTransition  `json:"transition"`
	Tasks         []jsonTask       `json:"tasks"`
	Unreadable    []jsonUnreadable `json:"unreadable"`
}

type jsonTask struct {
	PID          int      `json:"pid"`
	TID          int      `json:"tid"`
	Comm         string   `json:"comm"`
	Cmdline      string   `json:"cmdline"`
	KernelThread bool     `json:"kernel_thread"`
	State        string   `json:"state"`
	PatchState   int      `json:"patch_state"`
	Stack        []string `json:"stack"`
	StackError   *string  `json:"stack_error"`
}

// jsonPoke is kgr poke --json.
type jsonPoke struct {
	SchemaVersion int           `json:"schema_version"`
	Poked         []jsonPokePID `json:"poked"`
	Skipped       []jsonPokePID `json:"skipped"`
	Failed        []jsonPokePID `json:"failed"`
}

type jsonPokePID struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Reason string `json:"reason"`
}

type jsonUnreadable struct {
	PID   int    `json:"pid"`
	TID   int    `json:"tid"`
	Error string `json:"error"`
}

// decodeJSON parses a schema_version 1 document into v and checks that the
// listed top-level keys are present (a null value must still be spelled
// out). The whole shape is the schema's to check (schema.go).
func decodeJSON(doc string, v any, keys ...string) error {
	return decodeVersion(doc, 1, v, keys...)
}

// outcomeVersion is the schema_version of the life-cycle outcome.
const outcomeVersion = 2

// decodeOutcome is decodeJSON for a life-cycle outcome document.
func decodeOutcome(doc string, v any, keys ...string) error {
	return decodeVersion(doc, outcomeVersion, v, keys...)
}

func decodeVersion(doc string, version int, v any, keys ...string) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	var missing []string
	for _, k := range append([]string{"schema_version"}, keys...) {
		if _, ok := raw[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing keys %v", missing)
	}
	if err := json.Unmarshal(raw["schema_version"], new(int)); err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	if string(raw["schema_version"]) != strconv.Itoa(version) {
		return fmt.Errorf("schema_version is %s, want %d", raw["schema_version"], version)
	}
	return json.Unmarshal([]byte(doc), v)
}

// patchKeys are the keys every patch object must carry.
var patchKeys = []string{"name", "enabled", "transition", "replace", "replace_set", "stack_order", "objects"}

// checkPatchKeys checks that each patch object in a patches document spells
// out every key, including those whose value is null.
func checkPatchKeys(doc string) error {
	var raw struct {
		Patches []map[string]json.RawMessage `json:"patches"`
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return err
	}
	for _, p := range raw.Patches {
		for _, k := range patchKeys {
			if _, ok := p[k]; !ok {
				return fmt.Errorf("patch %s lacks key %q", p["name"], k)
			}
		}
	}
	return nil
}

// transitionJSON is what a transition should look like for the kernel's
// current state.
func transitionJSON(name string, target int) *jsonTransition {
	if name == "" {
		return nil
	}
	t := &jsonTransition{Patch: &name, Target: "patched"}
	if target == 0 {
		t.Target = "unpatched"
	}
	return t
}

func fmtTransition(t *jsonTransition) string {
	if t == nil {
		return "null"
	}
	p := "null"
	if t.Patch != nil {
		p = *t.Patch
	}
	return fmt.Sprintf("{patch:%s target:%s}", p, t.Target)
}

func sameTransition(a, b *jsonTransition) bool {
	return fmtTransition(a) == fmtTransition(b)
}

func intToBool(p *int) *bool {
	if p == nil {
		return nil
	}
	b := *p != 0
	return &b
}

func fmtBoolPtr(p *bool) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatBool(*p)
}

func fmtIntPtr(p *int) string {
	if p == nil {
		return "null"
	}
	return strconv.Itoa(*p)
}

// comparePatch compares one klp JSON patch with the kernel's view and
// returns the differences.
func comparePatch(j jsonPatch, k sysPatch) []string {
	var diffs []string
	d := func(field, got, want string) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s.%s: klp %s, kernel %s", k.name, field, got, want))
		}
	}
	en, tr := k.enabled != 0, k.transition != 0
	d("enabled", fmtBoolPtr(j.Enabled), fmtBoolPtr(&en))
	d("transition", fmtBoolPtr(j.Transition), fmtBoolPtr(&tr))
	d("replace", fmtBoolPtr(j.Replace), fmtBoolPtr(intToBool(k.replace)))
	d("replace_set", fmtIntPtr(j.ReplaceSet), fmtIntPtr(k.replaceSet))
	d("stack_order", fmtIntPtr(j.StackOrder), fmtIntPtr(k.stackOrder))
	d("objects", objectSummary(j.Objects), sysObjectSummary(k.objects))
	if j.Active != nil {
		d("active", fmtBoolPtr(j.Active), fmtBoolPtr(&en))
	}
	if j.HasForce != nil {
		d("has_force", fmtBoolPtr(j.HasForce), fmtBoolPtr(&k.hasForce))
	}
	if j.HasSignal != nil {
		d("has_signal", fmtBoolPtr(j.HasSignal), fmtBoolPtr(&k.hasSignal))
	}
	return diffs
}

// objectSummary renders objects in a canonical form:
// "vmlinux patched=true [cmdline_proc_show,1]; ...".
func objectSummary(objs []jsonObject) string {
	var parts []string
	for _, o := range objs {
		var fs []string
		for _, f := range o.Functions {
			fs = append(fs, fmt.Sprintf("%s,%d", f.Name, f.Sympos))
		}
		sort.Strings(fs)
		parts = append(parts, fmt.Sprintf("%s patched=%s %v", o.Name, fmtBoolPtr(o.Patched), fs))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func sysObjectSummary(objs []sysObject) string {
	var parts []string
	for _, o := range objs {
		fs := append([]string(nil), o.funcs...)
		sort.Strings(fs)
		parts = append(parts, fmt.Sprintf("%s patched=%s %v", o.name, fmtBoolPtr(intToBool(o.patched)), fs))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// lines splits command output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

func equalInts(a, b []int) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// str is the value of an optional string, "" for null.
func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
