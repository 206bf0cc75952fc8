package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klp-project/klp/docs/schema"
)

const draft202012 = "https://json-schema.org/draft/2020-12/schema"

// TestSchemaFiles checks every schema file: draft 2020-12, its $id in the
// repository, a title and a description, a const schema_version for each
// document, and every object closed with additionalProperties false, but
// for the *Fields definitions, which are open to be extended. An object
// that extends one names each of its properties (true, or a narrower
// schema) beside its own, so that additionalProperties can close it.
func TestSchemaFiles(t *testing.T) {
	paths, err := filepath.Glob("*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := schema.Documents()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s["$schema"] != draft202012 {
			t.Errorf("%s: $schema is %v, want %s", p, s["$schema"], draft202012)
		}
		if s["$id"] != schema.BaseURL+p {
			t.Errorf("%s: $id is %v, want %s", p, s["$id"], schema.BaseURL+p)
		}
		for _, k := range []string{"title", "description"} {
			if v, _ := s[k].(string); v == "" {
				t.Errorf("%s: no %s", p, k)
			}
		}
		doc := strings.TrimSuffix(p, ".schema.json")
		if p != "common.schema.json" {
			if !slices.Contains(docs, doc) {
				t.Errorf("%s: not among the compiled documents %v", p, docs)
			}
			props, _ := s["properties"].(map[string]any)
			sv, _ := props["schema_version"].(map[string]any)
			if _, ok := sv["const"]; !ok {
				t.Errorf("%s: schema_version is not a const: %v", p, props["schema_version"])
			}
		}
		checkClosed(t, p, "", s, s)
	}
}

// checkClosed walks a schema and reports every object schema that lets
// unknown properties through.
func checkClosed(t *testing.T, file, at string, root, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		_, hasProps := v["properties"]
		typ := v["type"]
		ref, _ := v["$ref"].(string)
		extends := strings.HasPrefix(ref, "#/$defs/") && strings.HasSuffix(ref, "Fields")
		isObject := typ == "object" || hasProps && typ == nil && ref == "" && at == "" || extends
		if isObject && v["additionalProperties"] != false && !strings.HasSuffix(at, "Fields") {
			t.Errorf("%s: #%s: an object schema without additionalProperties false", file, at)
		}
		if extends {
			checkExtends(t, file, at, root, v, ref)
		}
		for k, sub := range v {
			checkClosed(t, file, at+"/"+k, root, sub)
		}
	case []any:
		for i, sub := range v {
			checkClosed(t, file, fmt.Sprintf("%s/%d", at, i), root, sub)
		}
	}
}

// checkExtends checks that an object schema that extends a *Fields
// definition names every property of the definition, and names with true
// no property that the definition lacks.
func checkExtends(t *testing.T, file, at string, root any, v map[string]any, ref string) {
	t.Helper()
	fields, _ := obj(obj(root)["$defs"])[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	want, _ := fields["properties"].(map[string]any)
	got, _ := v["properties"].(map[string]any)
	if want == nil {
		t.Errorf("%s: #%s: %s has no properties", file, at, ref)
		return
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: #%s: property %q of %s is not named: additionalProperties rejects it", file, at, name, ref)
		}
	}
	for name, sub := range got {
		if _, ok := want[name]; !ok && sub == true {
			t.Errorf("%s: #%s: property %q is named true but %s does not define it", file, at, name, ref)
		}
	}
}

// documentsWithGoldenFiles are validated from the other packages' golden
// files (golden_test.go); the others need examples under testdata/.
var documentsWithGoldenFiles = []string{schema.Status, schema.Patches, schema.Blocking, schema.Poke, schema.Module}

// TestExamples validates testdata/<document>/*.json, hand-written
// documents for the commands that have no golden files (they change the
// kernel), each against its directory's document.
func TestExamples(t *testing.T) {
	docs, err := schema.Documents()
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		paths, err := filepath.Glob(filepath.Join("testdata", doc, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) == 0 && !slices.Contains(documentsWithGoldenFiles, doc) {
			t.Errorf("document %s has neither golden files nor examples in testdata/%s", doc, doc)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc, data); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !slices.Contains(docs, d.Name()) {
			t.Errorf("testdata/%s is named after no document", d.Name())
		}
	}
}

// mutation changes a valid document into one its schema must reject.
type mutation struct {
	name    string
	doc     string // the document and its base file
	file    string // testdata/<doc>/<file>, or a golden file
	change  func(m map[string]any)
	message string // expected in the error
}

func obj(v any) map[string]any { return v.(map[string]any) }

func arr(v any) []any { return v.([]any) }

func rename(m map[string]any, from, to string) {
	m[to] = m[from]
	delete(m, from)
}

// A golden status and blocking document, as internal/cli prints them.
const (
	goldenStatus   = cliGolden + "/transition-blocking/klp_json_status.txt"
	goldenBlocking = cliGolden + "/transition-blocking/klp_json_vv_blocking.txt"
	goldenPatches  = cliGolden + "/kernel-6.14/klp_json_vv_patches.txt"
	goldenKGraft   = cliGolden + "/sle12-kgraft/klp_json_patches.txt"
	goldenPoke     = cliGolden + "/transition-blocking/kgr_json_poke.txt"
	goldenModule   = modinfoGolden + "/klp_twoobj.ko.json"
)

var mutations = []mutation{
	// A renamed field: the new name is unknown, the old one missing.
	{"renamed field", schema.Status, goldenStatus, func(m map[string]any) { rename(m, "livepatch_supported", "supported") },
		"additional properties 'supported' not allowed"},
	{"renamed task field", schema.Blocking, goldenBlocking, func(m map[string]any) { rename(obj(arr(m["tasks"])[0]), "kernel_thread", "kthread") },
		"at '/tasks/0'"},
	{"renamed outcome field", schema.Outcome, "load-patched.json", func(m map[string]any) { rename(m, "elapsed_ms", "elapsed") },
		"missing property 'elapsed_ms'"},
	{"renamed module field", schema.Module, goldenModule, func(m map[string]any) { rename(m, "byte_order", "endianness") },
		"missing property 'byte_order'"},
	{"extra field in a nested object", schema.Patches, goldenPatches, func(m map[string]any) { obj(arr(m["patches"])[0])["refcnt"] = 1 },
		"additional properties 'refcnt' not allowed"},
	{"extra field in a per-patch outcome", schema.Outcome, "load-all-incomplete.json", func(m map[string]any) {
		obj(arr(m["outcomes"])[0])["schema_version"] = 2
	}, "at '/outcomes/0': additional properties 'schema_version' not allowed"},
	{"schema_version field added to info's module", schema.Module, goldenModule, func(m map[string]any) { m["schema_version"] = 1 },
		"at '': additional properties 'schema_version' not allowed"},

	// A missing required field (null must be spelled out).
	{"missing transition", schema.Status, goldenStatus, func(m map[string]any) { delete(m, "transition") },
		"missing property 'transition'"},
	{"missing exit_code", schema.Outcome, "load-rolled-back.json", func(m map[string]any) { delete(m, "exit_code") },
		"missing property 'exit_code'"},
	{"missing stack_error", schema.Blocking, goldenBlocking, func(m map[string]any) { delete(obj(arr(m["tasks"])[1]), "stack_error") },
		"missing property 'stack_error'"},
	{"missing kgraft on a kGraft kernel", schema.Patches, goldenKGraft, func(m map[string]any) { delete(obj(arr(m["patches"])[0]), "kgraft") },
		"missing property 'kgraft'"},
	{"missing advice", schema.Stall, "stall.json", func(m map[string]any) { delete(obj(arr(obj(m["stall"])["tasks"])[0]), "advice") },
		"missing property 'advice'"},
	{"missing installed", schema.Install, "install.json", func(m map[string]any) { delete(m, "installed") },
		"missing property 'installed'"},
	{"missing release", schema.List, "list.json", func(m map[string]any) { delete(m, "release") },
		"missing property 'release'"},

	// A wrong type.
	{"string for an integer", schema.Blocking, goldenBlocking, func(m map[string]any) { m["tasks_scanned"] = "16" },
		"at '/tasks_scanned'"},
	{"fraction for an integer", schema.Outcome, "load-patched.json", func(m map[string]any) { m["elapsed_ms"] = 1043.5 },
		"at '/elapsed_ms'"},
	{"null for a string", schema.Poke, goldenPoke, func(m map[string]any) { obj(arr(m["poked"])[0])["comm"] = nil },
		"at '/poked/0/comm'"},
	{"null for an array", schema.Outcome, "load-patched.json", func(m map[string]any) { m["kernel_log"] = nil },
		"at '/kernel_log'"},
	{"string for a bool", schema.Patches, goldenPatches, func(m map[string]any) { obj(arr(m["patches"])[0])["replace"] = "true" },
		"at '/patches/0/replace'"},
	{"number for a string", schema.Downgrade, "downgrade.json", func(m map[string]any) { m["to"] = 5 },
		"at '/to'"},
	{"object for null", schema.Outcome, "load-patched.json", func(m map[string]any) { m["preflight"] = map[string]any{} },
		"at '/preflight'"},

	// An unknown enum value.
	{"unknown interface", schema.Status, goldenStatus, func(m map[string]any) { m["interface"] = "kpatch" },
		"at '/interface'"},
	{"unknown target", schema.Blocking, goldenBlocking, func(m map[string]any) { obj(m["transition"])["target"] = "patching" },
		"at '/transition/target'"},
	{"unknown result", schema.Outcome, "load-patched.json", func(m map[string]any) { m["result"] = "loaded ok" },
		"at '/result'"},
	{"unknown action", schema.Outcome, "force.json", func(m map[string]any) { m["action"] = "rmmod" },
		"at '/action'"},
	{"unknown skip reason", schema.Poke, goldenPoke, func(m map[string]any) { obj(arr(m["skipped"])[0])["reason"] = "busy" },
		"at '/skipped/0/reason'"},
	{"unknown list state", schema.List, "list.json", func(m map[string]any) { obj(arr(m["loaded"])[0])["state"] = "active" },
		"at '/loaded/0/state'"},
	{"unknown check id", schema.Preflight, "module.json", func(m map[string]any) { obj(arr(m["checks"])[0])["id"] = "livepatch" },
		"at '/checks/0/id'"},
	{"unknown compression", schema.Info, "signed.json", func(m map[string]any) { m["compression"] = "bzip2" },
		"at '/compression'"},
	{"unknown exit code", schema.Outcome, "load-rolled-back.json", func(m map[string]any) { m["exit_code"] = 2 },
		"at '/exit_code'"},

	// The version of each document is its own.
	{"outcome at version 1", schema.Outcome, "load-patched.json", func(m map[string]any) { m["schema_version"] = 1 },
		"at '/schema_version'"},
	{"status at version 2", schema.Status, goldenStatus, func(m map[string]any) { m["schema_version"] = 2 },
		"at '/schema_version'"},

	// Rules between fields.
	{"in progress without a transition", schema.Status, goldenStatus, func(m map[string]any) { m["transition"] = nil },
		"at '/status'"},
	{"an error with exit status 0", schema.Outcome, "load-rolled-back.json", func(m map[string]any) { m["exit_code"] = 0 },
		"at '/exit_code'"},
	{"checks without a refusal", schema.Outcome, "load-failed.json", func(m map[string]any) {
		m["preflight"] = []any{map[string]any{"id": "vermagic", "title": "t", "status": "pass", "reason": "r", "fix": nil, "details": []any{}}}
	}, "at '/result'"},
	{"checks for an unload", schema.Outcome, "unload-all.json", func(m map[string]any) {
		m["result"] = "refused"
		m["preflight"] = []any{map[string]any{"id": "vermagic", "title": "t", "status": "pass", "reason": "r", "fix": nil, "details": []any{}}}
	}, "at '/action'"},
	{"a file for unload", schema.Outcome, "unload-all.json", func(m map[string]any) { m["file"] = "/x.ko" },
		"at '/file'"},
	{"load --all naming a patch", schema.Outcome, "load-all-loaded.json", func(m map[string]any) { m["patch"] = "klp_e2e_cmdline" },
		"at '/patch'"},
	{"load --all without its release", schema.Outcome, "load-all-none.json", func(m map[string]any) { m["release"] = nil },
		"at '/release'"},
	{"disabled with outcomes", schema.Outcome, "load-all-disabled.json", func(m map[string]any) { m["outcomes"] = []any{patchOutcome()} },
		"at '/outcomes'"},
	{"loaded with a failed patch", schema.Outcome, "load-all-incomplete.json", func(m map[string]any) { m["result"] = "loaded" },
		"at '/outcomes/0/result'"},
	{"a failed patch without its error", schema.Outcome, "load-all-incomplete.json", func(m map[string]any) { obj(arr(m["outcomes"])[2])["error"] = nil },
		"at '/outcomes/2/error'"},
	{"a nested --all", schema.Outcome, "unload-all.json", func(m map[string]any) { obj(arr(m["outcomes"])[0])["outcomes"] = []any{patchOutcome()} },
		"at '/outcomes/0/outcomes'"},
	{"a pass with a fix", schema.Preflight, "system.json", func(m map[string]any) { obj(arr(m["checks"])[0])["fix"] = "nothing" },
		"at '/checks/0/fix'"},
	{"pass despite a failed check", schema.Preflight, "module.json", func(m map[string]any) { m["result"] = "pass" },
		"at '/result'"},
	{"enabled on a kGraft patch", schema.Patches, goldenKGraft, func(m map[string]any) { obj(arr(m["patches"])[0])["enabled"] = true },
		"at '/patches/0'"},
	{"tasks without a transition", schema.Blocking, goldenBlocking, func(m map[string]any) { m["transition"] = nil },
		"at '/tasks'"},
}

// patchOutcome is a valid per-patch outcome.
func patchOutcome() map[string]any {
	return map[string]any{
		"action": "load", "patch": "p", "file": "/p.ko", "result": "patched", "elapsed_ms": 1, "error": nil, "exit_code": 0,
		"stall": nil, "kernel_log": []any{}, "notes": []any{}, "preflight": nil, "release": nil, "outcomes": []any{},
	}
}

// readJSON reads a testdata example or a golden file's stdout.
func readJSON(t *testing.T, path string) any {
	t.Helper()
	var data []byte
	if strings.HasSuffix(path, ".txt") {
		data = readCLIRun(t, path).stdout
	} else {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestInvalidDocuments makes sure the schemas can fail: each mutation of a
// valid document must be rejected with the expected violation, and the
// document must be valid before it.
func TestInvalidDocuments(t *testing.T) {
	for _, mu := range mutations {
		t.Run(mu.name, func(t *testing.T) {
			path := mu.file
			if !strings.HasPrefix(path, "../") {
				path = filepath.Join("testdata", mu.doc, mu.file)
			}
			base := readJSON(t, path)
			good, err := json.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(mu.doc, good); err != nil {
				t.Fatalf("the base document %s is invalid: %v", path, err)
			}
			mu.change(obj(base))
			bad, err := json.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			err = schema.Validate(mu.doc, bad)
			var inv *schema.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("accepted, or not an InvalidError: %v\n%s", err, bad)
			}
			if inv.Document != mu.doc || len(inv.Violations) == 0 {
				t.Errorf("InvalidError %+v", inv)
			}
			if msg := err.Error(); !strings.Contains(msg, mu.message) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line that contains %q", msg, mu.message)
			}
		})
	}
}

func TestValidateRejectsNonDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, doc, data, message string
	}{
		{"unknown document", "kpatch", `{}`, "no schema for this document"},
		{"common is no document", "common", `{}`, "no schema for this document"},
		{"empty", schema.Status, ``, "not JSON"},
		{"truncated", schema.Status, `{"schema_version": 1,`, "not JSON"},
		{"two documents", schema.Stall, `{"schema_version": 1, "stall": null}` + "\n" + `{"schema_version": 1, "stall": null}`, "not JSON"},
		{"an array", schema.List, `[]`, "at ''"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := schema.Validate(tc.doc, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Validate(%s, %q) = %v, want an error with %q", tc.doc, tc.data, err, tc.message)
			}
			if tc.doc == "kpatch" && !errors.Is(err, schema.ErrUnknownDocument) {
				t.Errorf("%v is not ErrUnknownDocument", err)
			}
		})
	}
	if err := schema.Validate(schema.Stall, []byte(`{"schema_version": 1, "stall": null}`+"\n")); err != nil {
		t.Errorf("a document and its newline: %v", err)
	}
}

// The violations come sorted, the same every time, though the validator
// walks Go maps.
func TestViolationsSorted(t *testing.T) {
	doc := []byte(`{"schema_version": 2, "a": 1, "b": 2, "c": 3, "action": "x", "result": "y", "exit_code": 7}`)
	var first string
	for i := 0; i < 20; i++ {
		err := schema.Validate(schema.Outcome, doc)
		var inv *schema.InvalidError
		if !errors.As(err, &inv) || len(inv.Violations) < 4 || !slices.IsSorted(inv.Violations) {
			t.Fatalf("violations not sorted: %v", err)
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("the error changed between runs:\n%s\n%s", first, err)
		}
	}
}

func TestDocumentFor(t *testing.T) {
	for _, tc := range []struct {
		args []string
		doc  string
	}{
		{[]string{"--json", "status"}, schema.Status},
		{[]string{"check", "--json"}, schema.Status},
		{[]string{"--json", "-vv", "patches"}, schema.Patches},
		{[]string{"--sysfs", "/snap/sys", "--procfs", "/snap/proc", "--json", "blocking"}, schema.Blocking},
		{[]string{"--sysfs=/snap/sys", "--json", "blocking_threads"}, schema.Blocking},
		{[]string{"--json", "blocking", "--why"}, schema.Stall},
		{[]string{"--json", "poke"}, schema.Poke},
		{[]string{"--json", "load", "--timeout", "3s", "/e2e/modules/klp_e2e_cmdline.ko"}, schema.Outcome},
		{[]string{"--json", "load", "--all"}, schema.Outcome},
		{[]string{"--json", "unload", "--all"}, schema.Outcome},
		{[]string{"--json", "disable", "p"}, schema.Outcome},
		{[]string{"--json", "enable", "p"}, schema.Outcome},
		{[]string{"--json", "wait"}, schema.Outcome},
		{[]string{"--json", "signal"}, schema.Outcome},
		{[]string{"--json", "force", "--yes", "p"}, schema.Outcome},
		{[]string{"--json", "install", "-k", "6.1.0-56-cloud-amd64", "p.ko"}, schema.Install},
		{[]string{"--json", "uninstall", "p"}, schema.Install},
		{[]string{"--json", "list"}, schema.List},
		{[]string{"--json", "-n", "downgrade"}, schema.Downgrade},
		{[]string{"--json", "info", "p.ko"}, schema.Info},
		{[]string{"--json", "preflight"}, schema.Preflight},
		{[]string{"--json", "preflight", "p.ko"}, schema.Preflight},
		{[]string{"--json", "version"}, ""},
		{[]string{"--json", "help", "status"}, ""},
		{[]string{"--json", "completion", "bash"}, ""},
		{[]string{"--json"}, ""},
		{[]string{"--json", "--", "status"}, ""},
		{nil, ""},
	} {
		doc, ok := schema.DocumentFor(tc.args)
		if doc != tc.doc || ok != (tc.doc != "") {
			t.Errorf("DocumentFor(%q) = %q, %v; want %q", tc.args, doc, ok, tc.doc)
		}
	}
}
