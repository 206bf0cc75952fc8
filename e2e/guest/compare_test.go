package main

import (
	"strings"
	"testing"
)

// These run on the host: they make sure the oracle's comparisons can fail.

func TestComparePatch(t *testing.T) {
	one, zero := 1, 0
	k := sysPatch{
		name: "p", enabled: 1, transition: 0, replace: &zero, hasForce: true,
		objects: []sysObject{{name: "vmlinux", patched: &one, funcs: []string{"cmdline_proc_show,1"}}},
	}
	doc := `{"schema_version":1,"patches":[{"name":"p","enabled":true,"transition":false,"replace":false,
		"replace_set":null,"stack_order":null,"has_force":true,"objects":[{"name":"vmlinux","patched":true,
		"functions":[{"name":"cmdline_proc_show","sympos":1}]}]}]}`
	var j jsonPatches
	if err := decodeJSON(doc, &j, "patches"); err != nil {
		t.Fatal(err)
	}
	if err := checkPatchKeys(doc); err != nil {
		t.Fatal(err)
	}
	if d := comparePatch(j.Patches[0], k); len(d) != 0 {
		t.Errorf("identical views differ: %v", d)
	}

	k.replace = nil // a kernel without the attribute: klp must say null
	seven := 7
	k.replaceSet = &seven // a kernel with replace sets: klp must say 7
	k.objects[0].funcs = []string{"cmdline_proc_show,2"}
	k.hasForce = false
	d := comparePatch(j.Patches[0], k)
	if got := strings.Join(d, "\n"); !strings.Contains(got, "replace:") || !strings.Contains(got, "replace_set:") || !strings.Contains(got, "objects") || !strings.Contains(got, "has_force") {
		t.Errorf("differences not found: %v", d)
	}
}

func TestDecodeJSONRequiresKeys(t *testing.T) {
	var s jsonStatus
	if err := decodeJSON(`{"schema_version":1,"status":"ready","livepatch_supported":true}`, &s, "status", "transition"); err == nil {
		t.Error("a missing transition key was accepted")
	}
	if err := decodeJSON(`{"schema_version":"1","status":"ready","transition":null}`, &s, "status", "transition"); err == nil {
		t.Error("a string schema_version was accepted")
	}
	if err := decodeJSON(`{"schema_version":1,"status":"ready","transition":null}`, &s, "status", "transition"); err != nil || s.Transition != nil {
		t.Errorf("valid document: %v %+v", err, s)
	}
	if err := checkPatchKeys(`{"patches":[{"name":"p","enabled":true}]}`); err == nil {
		t.Error("a patch without replace/stack_order keys was accepted")
	}
}

func TestParseVerbosePatches(t *testing.T) {
	out := "a\n    active: 1\n    RPM: x-1-1.noarch\n\nb\n    active: 0\n"
	b := parseVerbosePatches(out)
	if len(b) != 2 || b["a"]["active"] != "1" || b["a"]["RPM"] != "x-1-1.noarch" || b["b"]["active"] != "0" {
		t.Errorf("parsed %v", b)
	}
}

func TestTransitionJSON(t *testing.T) {
	if transitionJSON("", -1) != nil {
		t.Error("no transition must be null")
	}
	p := "p"
	if !sameTransition(transitionJSON("p", 0), &jsonTransition{Patch: &p, Target: "unpatched"}) {
		t.Error("enabled=0 in transition means target unpatched")
	}
	if sameTransition(transitionJSON("p", 1), &jsonTransition{Patch: &p, Target: "unpatched"}) {
		t.Error("targets must differ")
	}
}
