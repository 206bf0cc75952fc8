package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
)

// klp leaves Prometheus's libraries to klp-exporter (cli.ExporterProgram):
// a package that pulls them back in costs every command its start and exit
// (docs/performance.md).
func TestKlpLinksNoExporter(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/prometheus/") || p == "net/http" || p == "google.golang.org/protobuf/proto" ||
			p == "github.com/klp-project/klp/internal/metrics" || p == "github.com/klp-project/klp/internal/exporter" {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("klp links %s: they belong in klp-exporter alone", strings.Join(bad, ", "))
	}
}

// The built klp runs the built klp-exporter beside it for klp metrics, and
// refuses one that another user could have changed.
func TestKlpRunsExporter(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/", ".", "../klp-exporter").CombinedOutput(); err != nil {
		t.Fatalf("build klp and klp-exporter: %v\n%s", err, out)
	}
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "transition-blocking.txtar"))
	klp := exec.Command(filepath.Join(dir, "klp"), "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "metrics")
	out, err := klp.Output()
	if err != nil || !strings.Contains(string(out), "\nklp_transition_in_progress 1\n") {
		t.Fatalf("klp metrics: %v\n%s", err, out)
	}

	exporter := filepath.Join(dir, "klp-exporter")
	if err := os.Chmod(exporter, 0o775); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(filepath.Join(dir, "klp"), "metrics").CombinedOutput()
	if want := "klp: run " + exporter + ": writable by group or others (mode 0775), refused: chmod go-w it\n"; err == nil || string(out) != want {
		t.Errorf("group-writable klp-exporter: %v, %q; want %q", err, out, want)
	}
	if err := os.Remove(exporter); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(filepath.Join(dir, "klp"), "exporter").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "klp: find klp-exporter: file does not exist: klp metrics and klp exporter are served by klp-exporter") {
		t.Errorf("no klp-exporter: %v, %q", err, out)
	}
}
