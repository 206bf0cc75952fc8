package harness

import (
	"archive/tar"
	"os"
	"strings"
	"testing"
)

func TestParseConsole(t *testing.T) {
	const k = "6.1.0-56-cloud-amd64"
	lines := []string{
		"SeaBIOS noise",
		"KLPTEST-BOOT " + k,
		"KLPTEST-SCENARIO " + k + " idle",
		"KLPTEST " + k + " idle/status PASS want \"ready\"",
		"KLPNOTE " + k + " idle/duration 1.5s",
		"KLPTEST-SCENARIO " + k + " blocked",
		"[    3.1] livepatch: noise KLPTEST " + k + " blocked/stays-blocked FAIL transition=0 after 2.5s",
		"KLPLOG livepatch: 'p': patching complete",
		"KLPTEST 6.12.1 blocked/other-kernel PASS ignored",
		"KLPTEST " + k + " blocked/bad-verdict MAYBE ignored",
		"KLPTEST-DONE " + k + " 1 1",
		"[    9.0] reboot: Power down",
	}
	c := ParseConsole(lines, k)
	if !c.Done || c.Passed != 1 || c.Failed != 1 {
		t.Errorf("Done %v, counts %d passed %d failed; want true, 1 and 1", c.Done, c.Passed, c.Failed)
	}
	if err := c.CheckCounts(); err != nil {
		t.Errorf("CheckCounts: %v", err)
	}
	if len(c.Checks) != 2 {
		t.Fatalf("got %d checks, want 2: %+v", len(c.Checks), c.Checks)
	}
	want := []Check{
		{Name: "idle/status", Scenario: "idle", Pass: true, Detail: `want "ready"`},
		{Name: "blocked/stays-blocked", Scenario: "blocked", Pass: false, Detail: "transition=0 after 2.5s"},
	}
	for i, w := range want {
		if c.Checks[i] != w {
			t.Errorf("check %d = %+v, want %+v", i, c.Checks[i], w)
		}
	}
	if len(c.Notes) != 1 || c.Notes[0] != "idle/duration 1.5s" {
		t.Errorf("notes = %q", c.Notes)
	}
	ex := c.Excerpt("blocked", 80)
	if !strings.HasPrefix(ex, "KLPTEST-SCENARIO "+k+" blocked") || !strings.Contains(ex, "KLPLOG") || strings.Contains(ex, "KLPTEST-DONE") {
		t.Errorf("excerpt of blocked:\n%s", ex)
	}
	if ex := c.Excerpt("blocked", 2); !strings.HasPrefix(ex, "... (3 lines skipped)") {
		t.Errorf("short excerpt:\n%s", ex)
	}
	if ex := c.Excerpt("missing", 5); !strings.Contains(ex, "not found") {
		t.Errorf("excerpt of a missing scenario: %q", ex)
	}
}

// TestCheckCounts: a check line that does not parse, or a DONE line whose
// counts disagree with the lines, fails the run.
func TestCheckCounts(t *testing.T) {
	const k = "6.1.0-56-cloud-amd64"
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // "" for agreement, else a part of the error
	}{
		{"agree", []string{"KLPTEST " + k + " a/b PASS", "KLPTEST " + k + " a/c FAIL x", "KLPTEST-DONE " + k + " 1 1"}, ""},
		{"garbled FAIL", []string{"KLPTEST " + k + " a/b PASS", "KLPTEST " + k + " a/c FA[  3.1] oops IL x", "KLPTEST-DONE " + k + " 1 1"}, "1 passed and 1 failed checks, the console shows 1 and 0"},
		{"lost PASS", []string{"KLPTEST-DONE " + k + " 1 0"}, "shows 0 and 0"},
		{"extra line", []string{"KLPTEST " + k + " a/b PASS", "KLPTEST " + k + " a/b PASS", "KLPTEST-DONE " + k + " 1 0"}, "shows 2 and 0"},
		{"garbled DONE", []string{"KLPTEST " + k + " a/b PASS", "KLPTEST-DONE " + k + " 1"}, "garbled KLPTEST-DONE"},
		{"no DONE", []string{"KLPTEST " + k + " a/b PASS"}, "no KLPTEST-DONE"},
	} {
		err := ParseConsole(tc.lines, k).CheckCounts()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseConsoleCrash(t *testing.T) {
	const k = "6.12.117+deb12-cloud-amd64"
	c := ParseConsole([]string{"KLPTEST-BOOT " + k, "KLPTEST-SCENARIO " + k + " idle", "Kernel panic - not syncing"}, k)
	if c.Done {
		t.Error("Done = true for a console without KLPTEST-DONE")
	}
	if ex := c.Excerpt("idle", 10); !strings.Contains(ex, "Kernel panic") {
		t.Errorf("an unfinished scenario's excerpt runs to the end of the console: %q", ex)
	}
	if got := Tail([]string{"a", "b", "c"}, 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
}

func TestHashSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := writeFile(dir+"/"+name, data); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		h, _, err := hashSources(dir)
		if err != nil || len(h) != 12 {
			t.Fatalf("hashSources = %q, %v", h, err)
		}
		return h
	}
	write("Kbuild", "obj-m += a.o\n")
	write("a.c", "int x;\n")
	write("a.lds", "SECTIONS { }\n")
	write("notes.txt", "ignored\n")
	h1, files, err := hashSources(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(files, " ") != "Kbuild a.c a.lds" {
		t.Errorf("files = %q, want Kbuild, a.c and a.lds only", files)
	}
	write("notes.txt", "still ignored\n")
	if h2 := hash(); h2 != h1 {
		t.Error("editing a non-source file changed the hash")
	}
	write("a.c", "int y;\n")
	h3 := hash()
	if h3 == h1 {
		t.Error("editing a source file kept the hash")
	}
	write("a.lds", "SECTIONS { .x : { } }\n")
	if h4 := hash(); h4 == h3 {
		t.Error("editing a linker script kept the hash")
	}
	write("b.h", "#define B 1\n")
	if h5 := hash(); h5 == h3 {
		t.Error("adding a header kept the hash")
	}
	// A source that cannot be read, or no directory: an error, never the
	// hash of what could be read.
	if err := os.Mkdir(dir+"/c.c", 0o755); err != nil {
		t.Fatal(err)
	}
	if h, _, err := hashSources(dir); err == nil {
		t.Errorf("unreadable source: hash %q, no error", h)
	}
	if h, _, err := hashSources(dir + "/missing"); err == nil {
		t.Errorf("missing directory: hash %q, no error", h)
	}
}

func writeFile(path, data string) error {
	return os.WriteFile(path, []byte(data), 0o644)
}

func TestSameOutput(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"ready\n", "ready\n", true},
		{"ready\n", "in_progress\n", false},
		{`{"tasks": [], "tasks_scanned": 59}`, `{"tasks": [], "tasks_scanned": 61}`, true},
		{`{"tasks": [], "tasks_scanned": 59}`, `{"tasks": [], "tasks_scanned": 159}`, false},
		{`{"tasks": [1], "tasks_scanned": 59}`, `{"tasks": [], "tasks_scanned": 59}`, false},
		{`{"tasks_scanned": 59}`, `{}`, false},
	} {
		if got := SameOutput(c.a, c.b); got != c.same {
			t.Errorf("SameOutput(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// TestOutbox reads what a guest wrote: tar entries, flushed, on an image of
// zeros, and nothing when it wrote nothing.
func TestOutbox(t *testing.T) {
	path := t.TempDir() + "/outbox.img"
	if err := NewOutbox(path); err != nil {
		t.Fatal(err)
	}
	files, err := ReadOutbox(path)
	if err != nil || len(files) != 0 {
		t.Fatalf("an empty outbox: %v, %v", files, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, data := range map[string]string{"a.tar.zst": "\x28\xb5\x2f\xfd binary", "b.json": "[]"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
		tw.Flush() // the guest never closes: the zeros end the archive
	}
	f.Close()
	files, err = ReadOutbox(path)
	if err != nil || string(files["a.tar.zst"]) != "\x28\xb5\x2f\xfd binary" || string(files["b.json"]) != "[]" || len(files) != 2 {
		t.Errorf("files %q, %v", files, err)
	}
	if fi, _ := os.Stat(path); fi.Size() != OutboxSize {
		t.Errorf("size %d", fi.Size())
	}
}

func TestBootResources(t *testing.T) {
	if m, c := (BootConfig{}).resources(); m != "1G" || c != 1 {
		t.Errorf("defaults: %s, %d; want 1G, 1", m, c)
	}
	if m, c := (BootConfig{Memory: "6G", CPUs: 2}).resources(); m != "6G" || c != 2 {
		t.Errorf("set: %s, %d; want 6G, 2", m, c)
	}
}
