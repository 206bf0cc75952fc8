package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
)

// The man pages are generated from the command definitions and checked in;
// a change to a command's help must come with `make docs`.
func TestManPagesUpToDate(t *testing.T) {
	for _, prog := range []string{"klp", "kgr"} {
		path := filepath.Join("..", "..", "docs", "man", prog+".8")
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := ManPage(prog); !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make docs", path)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var b bytes.Buffer
		if err := Completion("klp", shell, &b); err != nil || !strings.Contains(b.String(), "klp") {
			t.Errorf("%s completion: %v, %d bytes", shell, err, b.Len())
		}
	}
	if err := Completion("klp", "tcsh", &bytes.Buffer{}); err == nil {
		t.Error("tcsh completion did not fail")
	}
}

// Patch names complete from sysfs (of --sysfs, when given).
func TestPatchNameCompletion(t *testing.T) {
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "kernel-6.14.txtar"))
	var out, errOut bytes.Buffer
	env := DefaultEnv(strings.NewReader(""), &out, &errOut)
	code := Run([]string{"klp", "__complete", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "unload", ""}, env)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	patches := strings.Fields(strings.Split(out.String(), ":")[0])
	if len(patches) == 0 {
		t.Fatalf("no completions: %q", out.String())
	}
	entries, err := os.ReadDir(filepath.Join(root, "sys", "kernel", "livepatch"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.Name())
	}
	if strings.Join(patches, " ") != strings.Join(want, " ") {
		t.Errorf("completions %q, want the patches %q", patches, want)
	}
}
