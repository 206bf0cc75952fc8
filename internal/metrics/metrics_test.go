package metrics_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/metrics"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

const fixtureDir = "../../testdata"

// collector opens a fixture tree and returns a collector on it, whose clock
// reads *now.
func collector(t *testing.T, fixture string, now *time.Time, st store.Store) *metrics.Collector {
	t.Helper()
	root := fakefs.Load(t, filepath.Join(fixtureDir, fixture+".txtar"))
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	return metrics.New(admin.NewSystem(h), metrics.Options{Version: "test", Store: st, Now: func() time.Time { return *now }})
}

func scrape(t *testing.T, c *metrics.Collector) string {
	t.Helper()
	var b bytes.Buffer
	if err := metrics.Write(&b, metrics.Registry(c)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// series returns the sample lines of name (with labels) in an exposition.
func series(expo, name string) []string {
	var out []string
	for _, l := range strings.Split(expo, "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			out = append(out, l)
		}
	}
	return out
}

func TestTransitionDurationAcrossScrapes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := collector(t, "transition-blocking", &now, store.Store{})
	scrape(t, c)
	now = now.Add(90 * time.Second)
	got := scrape(t, c)
	want := `klp_transition_duration_seconds{patch="livepatch_2_160000_1_1"} 90`
	if d := series(got, "klp_transition_duration_seconds"); len(d) != 1 || d[0] != want {
		t.Errorf("duration series %q, want %q", d, want)
	}
	if d := series(got, "klp_blocking_tasks"); len(d) != 2 {
		t.Errorf("blocking series %q, want a user and a kernel count", d)
	}
}

func TestNoTransitionNoTaskScan(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := collector(t, "kernel-6.14", &now, store.Store{})
	c.Seen("stale", now.Add(-time.Hour))
	got := scrape(t, c)
	for _, name := range []string{"klp_blocking_tasks", "klp_transition_duration_seconds", "klp_transition_start_time_seconds"} {
		if s := series(got, name); len(s) != 0 {
			t.Errorf("%s without a transition: %q", name, s)
		}
	}
	if s := series(got, "klp_transition_in_progress"); len(s) != 1 || s[0] != "klp_transition_in_progress 0" {
		t.Errorf("in progress: %q", s)
	}
}

// TestTextfile writes klp.prom twice during one transition, from two
// collectors (two runs of klp metrics --textfile): the second run keeps the
// first one's start, then a run after the transition drops it.
func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	if err := metrics.WriteTextfile(dir, collector(t, "transition-blocking", &now, store.Store{})); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Minute)
	if err := metrics.WriteTextfile(dir, collector(t, "transition-blocking", &now, store.Store{})); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, metrics.TextfileName))
	if err != nil {
		t.Fatal(err)
	}
	if d := series(string(b), "klp_transition_duration_seconds"); len(d) != 1 || !strings.HasSuffix(d[0], "} 300") {
		t.Errorf("second run: duration %q, want 300", d)
	}
	now = now.Add(time.Minute)
	if err := metrics.WriteTextfile(dir, collector(t, "kernel-6.14", &now, store.Store{})); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, metrics.TextfileName))
	if d := series(string(b), "klp_transition_start_time_seconds"); len(d) != 0 {
		t.Errorf("after the transition: %q", d)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files, want klp.prom alone (no temporary file left)", len(entries))
	}
}

func TestTextfileErrors(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := collector(t, "kernel-6.1", &now, store.Store{})
	if err := metrics.WriteTextfile(filepath.Join(t.TempDir(), "missing"), c); err == nil {
		t.Error("a missing directory was accepted")
	}
	dir := t.TempDir()
	// A klp.prom that is not an exposition is replaced, not fatal.
	if err := os.WriteFile(filepath.Join(dir, metrics.TextfileName), []byte("garbage {{{\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := metrics.WriteTextfile(dir, c); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.StartTimes(strings.NewReader("garbage {{{\n")); err == nil {
		t.Error("StartTimes accepted garbage")
	}
}

// TestStore reports installed patches by release, and which of the running
// kernel's are not loaded; an unreadable store is counted, not fatal.
func TestStore(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dir := t.TempDir()
	for _, p := range []string{"6.1.0-test/livepatch_2_160000_1_1.ko", "6.1.0-test/klp_missing.ko", "5.0.0-old/old.ko"} {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-blocking.txtar"))
	if err := os.MkdirAll(filepath.Join(root, "proc", "sys", "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "sys", "kernel", "osrelease"), []byte("6.1.0-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.New(admin.NewSystem(h), metrics.Options{Store: store.Store{Dir: dir}, Now: func() time.Time { return now }})
	got := scrape(t, c)
	for name, want := range map[string][]string{
		"klp_installed_patches": {`klp_installed_patches{release="5.0.0-old"} 1`, `klp_installed_patches{release="6.1.0-test"} 2`},
		"klp_patch_installed_not_loaded": {`klp_patch_installed_not_loaded{patch="klp_missing"} 1`,
			`klp_patch_installed_not_loaded{patch="livepatch_2_160000_1_1"} 0`},
	} {
		if s := series(got, name); strings.Join(s, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", name, strings.Join(s, "\n"), strings.Join(want, "\n"))
		}
	}
	// The store becomes a file: counted, and the kernel's series remain.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got = scrape(t, c)
	if s := series(got, `klp_scrape_errors_total{source="store"}`); len(s) != 1 || s[0] != `klp_scrape_errors_total{source="store"} 1` {
		t.Errorf("store errors: %q", s)
	}
	if s := series(got, "klp_patch_enabled"); len(s) != 2 {
		t.Errorf("patch series lost with the store: %q", s)
	}
}

// TestPromtoolCheckMetrics runs Prometheus's own linter over the golden
// exposition of every fixture tree (internal/cli/testdata/golden).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := lookPromtool(t)
	files, err := filepath.Glob("../cli/testdata/golden/*/klp_metrics.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden expositions: %v", err)
	}
	stdout := regexp.MustCompile(`(?s)-- stdout --\n(.*)-- stderr --\n`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := stdout.FindSubmatch(b)
		if m == nil || len(m[1]) == 0 {
			t.Errorf("%s: no exposition", f)
			continue
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(m[1])
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("%s: promtool check metrics: %v\n%s", f, err, out)
		}
	}
}

// lookPromtool finds Debian's promtool (make deps installs the prometheus
// package); without it the test is skipped, saying so.
func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus, or make deps): Prometheus's checks skipped")
	}
	return p
}
