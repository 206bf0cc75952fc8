package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{"stdin", []string{"stall"}, `{"schema_version": 1, "stall": null}`, 0, "standard input: valid stall document\n", ""},
		{"files", []string{"install", "../testdata/install/install.json", "../testdata/install/uninstall.json"}, "", 0,
			"../testdata/install/install.json: valid install document\n../testdata/install/uninstall.json: valid install document\n", ""},
		{"invalid", []string{"stall", "-"}, `{"schema_version": 2, "stall": null}`, 1, "",
			"standard input: validate stall document: at '/schema_version': value must be 1\n"},
		{"one of two invalid", []string{"outcome", "../testdata/install/install.json", "../testdata/outcome/force.json"}, "", 1,
			"../testdata/outcome/force.json: valid outcome document\n", "../testdata/install/install.json: validate outcome document: "},
		{"missing file", []string{"list", "nonexistent.json"}, "", 1, "", "nonexistent.json: open nonexistent.json: no such file or directory\n"},
		{"unknown document", []string{"kpatch"}, `{}`, 1, "", "standard input: validate kpatch document: no schema for this document\n"},
		{"no arguments", nil, "", 2, "", "usage: validate DOCUMENT [FILE...]\ndocuments: blocking, downgrade, error, info, install, list, manifest, module, outcome, patches, poke, preflight, snapshot, stall, status\n"},
		{"an option", []string{"-h"}, "", 2, "", "usage: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if code != tc.code || out.String() != tc.stdout || !strings.HasPrefix(errb.String(), tc.stderr) || (tc.stderr == "") != (errb.Len() == 0) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q...", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
