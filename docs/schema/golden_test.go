package schema_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/klp-project/klp/docs/schema"
)

// The golden files of the other packages, relative to this one.
const (
	cliGolden     = "../../internal/cli/testdata/golden"
	modinfoGolden = "../../modinfo/testdata/golden"
)

// cliRun is one golden file of internal/cli: a txtar archive whose comment
// is "$ PROG ARGS..." and "exit status N", and whose files are the
// command's stdout and stderr (and the signals it sent).
type cliRun struct {
	args   []string // after the program name
	exit   string   // "exit status N"
	stdout []byte
}

func readCLIRun(t *testing.T, path string) cliRun {
	t.Helper()
	a, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Split(strings.TrimSpace(string(a.Comment)), "\n")
	if len(head) != 2 || !strings.HasPrefix(head[0], "$ ") || !strings.HasPrefix(head[1], "exit status ") {
		t.Fatalf("%s: the comment is not \"$ command\" and \"exit status N\": %q", path, a.Comment)
	}
	r := cliRun{args: strings.Fields(head[0])[2:], exit: head[1]}
	found := false
	for _, f := range a.Files {
		if f.Name == "stdout" {
			r.stdout, found = f.Data, true
		}
	}
	if !found {
		t.Fatalf("%s: no stdout section", path)
	}
	return r
}

func hasJSONFlag(args []string) bool {
	for _, a := range args {
		if a == "--json" {
			return true
		}
	}
	return false
}

// TestCLIGoldenFiles validates the stdout of every internal/cli golden
// file whose command has --json against the schema of the document that
// command prints, or of the error document when it failed before it could
// print its own. Every such command prints one: an empty stdout fails the
// test. A --json command that maps to no document fails the test too, so
// that a new golden command cannot escape validation.
func TestCLIGoldenFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(cliGolden, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden files under %s", cliGolden)
	}
	validated := map[string]int{}
	empty := 0
	for _, p := range paths {
		r := readCLIRun(t, p)
		name := filepath.Base(p)
		if hasJSONFlag(r.args) != strings.Contains(name, "json") {
			t.Errorf("%s: the file name and the command (%q) disagree on --json", p, r.args)
			continue
		}
		if !hasJSONFlag(r.args) {
			continue
		}
		if _, ok := schema.DocumentFor(r.args); !ok {
			t.Errorf("%s: no document is known for %q: map it in schema.DocumentFor", p, r.args)
			continue
		}
		if len(r.stdout) == 0 {
			// --json promises a document also when the command fails.
			t.Errorf("%s: no document on stdout (%s)", p, r.exit)
			empty++
			continue
		}
		doc, err := schema.ValidateOutput(r.args, r.stdout)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if doc == schema.Error && r.exit == "exit status 0" {
			t.Errorf("%s: an error document and exit status 0", p)
		}
		validated[doc]++
	}
	t.Logf("validated %v; %d failed commands printed no document", validated, empty)
	for _, doc := range []string{schema.Status, schema.Patches, schema.Blocking, schema.Poke, schema.Error} {
		if validated[doc] == 0 {
			t.Errorf("no golden %s document was validated", doc)
		}
	}
}

// TestModinfoGoldenFiles validates package modinfo's expected documents:
// the module description that klp info --json prints with schema_version
// and file added.
func TestModinfoGoldenFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(modinfoGolden, "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range paths {
		if !strings.HasSuffix(p, ".json") {
			t.Errorf("%s: not a JSON golden file; map it to its document here", p)
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(schema.Module, data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no golden files under %s", modinfoGolden)
	}
	t.Logf("validated %d module descriptions", n)
}
