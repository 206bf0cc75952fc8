package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestCheckOutput(t *testing.T) {
	status := `{"schema_version": 1, "status": "ready", "interface": "livepatch", "livepatch_supported": true, "transition": null}`
	for _, tc := range []struct {
		name     string
		argv     []string
		stdout   string
		recorded bool
		doc      string
		err      string // "" for valid
	}{
		{"valid", []string{"/bin/klp", "--json", "status"}, status, true, "status", ""},
		{"kgr", []string{"/bin/kgr", "--json", "check"}, status, true, "status", ""},
		{"invalid", []string{"/bin/klp", "--json", "status"}, strings.Replace(status, `"ready"`, `"idle"`, 1), true, "status",
			"validate status document: at '/status'"},
		{"another document's version", []string{"/bin/klp", "--json", "wait"}, `{"schema_version": 1, "action": "wait", "patch": "", "result": "ready",
			"elapsed_ms": 0, "error": null, "exit_code": 0, "stall": null, "kernel_log": [], "notes": []}`, true, "outcome",
			"at '/schema_version': value must be 2"},
		{"not JSON", []string{"/bin/klp", "--json", "list"}, "no patches\n", true, "list", "not JSON"},
		{"unknown command", []string{"/bin/klp", "--json", "frobnicate"}, "{}", true, "", "no schema for this document"},
		{"no document", []string{"/bin/klp", "--json", "status"}, "", false, "", ""},
		{"text", []string{"/bin/klp", "status"}, "Ready\n", false, "", ""},
		{"another program", []string{"insmod", "--json"}, "{}", false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := checkOutput(tc.argv, tc.stdout)
			if ok != tc.recorded || v.doc != tc.doc {
				t.Fatalf("checkOutput = %+v, %v; want recorded %v, document %q", v, ok, tc.recorded, tc.doc)
			}
			if (v.err == nil) != (tc.err == "") || v.err != nil && (!strings.Contains(v.err.Error(), tc.err) || strings.Contains(v.err.Error(), "\n")) {
				t.Errorf("error %v, want one line with %q", v.err, tc.err)
			}
		})
	}
}

// The runner reports each invalid document as a failed check and the
// valid ones as one passed check per scenario.
func TestReportDocuments(t *testing.T) {
	recordOutput([]string{"/bin/klp", "--json", "status"}, `{"schema_version": 1, "status": "ready", "interface": "none", "livepatch_supported": false, "transition": null}`)
	recordOutput([]string{"/bin/kgr", "--json", "poke"}, `{"schema_version": 1, "dry_run": false, "poked": [], "skipped": [], "failed": []}`)
	recordOutput([]string{"/bin/klp", "--json", "list"}, `{"schema_version": 1}`)
	r := &runner{kernel: "6.1.0-56-cloud-amd64", scenario: "idle"}
	out := captureStdout(t, r.reportDocuments)
	want := []string{
		"KLPTEST 6.1.0-56-cloud-amd64 idle/json-schema FAIL /bin/klp --json list: validate list document: at '': missing properties 'release', 'loaded', 'installed', 'functions', 'other_users_error'",
		"KLPTEST 6.1.0-56-cloud-amd64 idle/json-schema PASS 2 document(s) valid against docs/schema: poke 1, status 1",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("report:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if r.failed != 1 || r.passed != 1 || !r.scenFail {
		t.Errorf("runner counts %d passed, %d failed, scenario failed %v", r.passed, r.failed, r.scenFail)
	}
	if out := captureStdout(t, r.reportDocuments); out != "" {
		t.Errorf("verdicts reported twice: %q", out)
	}
}

func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(rd)
		done <- b
	}()
	fn()
	os.Stdout = old
	w.Close()
	return string(<-done)
}
