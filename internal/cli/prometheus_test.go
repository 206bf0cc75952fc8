package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakefs"
)

// recordingExporter is an Exporter that keeps what it was asked.
type recordingExporter struct {
	metrics []MetricsRequest
	serves  []ServeRequest
}

func (r *recordingExporter) Metrics(req MetricsRequest) error {
	r.metrics = append(r.metrics, req)
	_, err := req.Out.Write([]byte("metrics\n"))
	return err
}

func (r *recordingExporter) Serve(req ServeRequest) error {
	r.serves = append(r.serves, req)
	return nil
}

// klp, without an Exporter, hands its command line to ExecExporter once
// its own flag parsing accepted it, and only then.
func TestExecExporter(t *testing.T) {
	var got [][]string
	var fail error
	env := &Env{ExecExporter: func(args []string) error {
		got = append(got, args)
		return fail
	}}
	for _, args := range [][]string{
		{"--sysfs", "/s", "metrics", "--textfile", "/d"},
		{"-v", "exporter", "--web.listen-address=127.0.0.1:1", "--web.systemd-socket"},
	} {
		got = nil
		_, errOut, code := pfRun(t, "", env, args...)
		if code != ExitOK || errOut != "" {
			t.Errorf("klp %q: exit %d, stderr %q", args, code, errOut)
		}
		if diff := cmp.Diff([][]string{args}, got); diff != "" {
			t.Errorf("klp %q: ExecExporter's arguments (-want +got):\n%s", args, diff)
		}
	}

	// A command line klp refuses never reaches klp-exporter.
	for _, args := range [][]string{{"metrics", "extra"}, {"exporter", "--no-such-flag"}, {"--sysfs", "/s", "--snapshot", "f", "metrics"}} {
		got = nil
		_, errOut, code := pfRun(t, "", env, args...)
		if code != ExitError || !strings.Contains(errOut, "Run 'klp --help' for usage.") || got != nil {
			t.Errorf("klp %q: exit %d, stderr %q, ran %q; want a usage error and no klp-exporter", args, code, errOut, got)
		}
	}

	// A klp-exporter that cannot run is klp's error.
	fail = errors.New("find klp-exporter: file does not exist")
	_, errOut, code := pfRun(t, "", env, "metrics")
	if code != ExitError || errOut != "klp: find klp-exporter: file does not exist\n" {
		t.Errorf("failing ExecExporter: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = pfRun(t, "", &Env{}, "metrics")
	if code != ExitError || !strings.Contains(errOut, "cannot run klp-exporter") {
		t.Errorf("no ExecExporter: exit %d, stderr %q", code, errOut)
	}
}

// klp-exporter serves the two commands with its Exporter, given the
// options every command shares; it has no other command.
func TestRunExporter(t *testing.T) {
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "kernel-6.1.txtar"))
	rec := &recordingExporter{}
	var out, errOut strings.Builder
	env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Exporter: rec,
		ExecExporter: func([]string) error { t.Error("klp-exporter executed itself"); return nil }}
	sys := []string{"klp-exporter", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}

	if code := RunExporter(append(sys, "metrics", "--textfile", "/d"), env); code != ExitOK || out.String() != "metrics\n" {
		t.Fatalf("metrics: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if len(rec.metrics) != 1 || rec.metrics[0].Textfile != "/d" || rec.metrics[0].System == nil || rec.metrics[0].Version != version {
		t.Errorf("metrics asked %+v", rec.metrics)
	}
	code := RunExporter(append(sys, "exporter", "--web.listen-address", "127.0.0.1:1", "--web.listen-address", "[::1]:2",
		"--web.telemetry-path", "/m", "--web.config.file", "/w.yml", "--web.systemd-socket"), env)
	if code != ExitOK || len(rec.serves) != 1 {
		t.Fatalf("exporter: exit %d, asked %+v, stderr %q", code, rec.serves, errOut.String())
	}
	s := rec.serves[0]
	if diff := cmp.Diff([]string{"127.0.0.1:1", "[::1]:2"}, s.Listen); diff != "" || s.TelemetryPath != "/m" || s.ConfigFile != "/w.yml" || !s.SystemdSocket || s.Log == nil || s.System == nil {
		t.Errorf("exporter asked %+v %s", s, diff)
	}

	errOut.Reset()
	if code := RunExporter([]string{"klp-exporter", "load", "x.ko"}, env); code != ExitError || !strings.Contains(errOut.String(), `unknown command "load"`) {
		t.Errorf("load: exit %d, stderr %q", code, errOut.String())
	}
	// Its defaults are klp's.
	rec.serves = nil
	if code := RunExporter(append(sys, "exporter"), env); code != ExitOK || len(rec.serves) != 1 ||
		!cmp.Equal(rec.serves[0].Listen, []string{DefaultListenAddress}) || rec.serves[0].TelemetryPath != "/metrics" {
		t.Errorf("exporter's defaults: exit %d, asked %+v", code, rec.serves)
	}
}

func TestFindExporter(t *testing.T) {
	euid := os.Geteuid()
	write := func(t *testing.T, path string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}

	t.Run("beside klp first", func(t *testing.T) {
		prefix := t.TempDir()
		bin := filepath.Join(prefix, "bin")
		write(t, filepath.Join(prefix, "libexec", "klp", ExporterProgram), 0o755)
		got, err := findExporter(bin, euid)
		if want := filepath.Join(prefix, "libexec", "klp", ExporterProgram); err != nil || got != want {
			t.Errorf("libexec only: %q, %v; want %q", got, err, want)
		}
		write(t, filepath.Join(bin, ExporterProgram), 0o755)
		got, err = findExporter(bin, euid)
		if want := filepath.Join(bin, ExporterProgram); err != nil || got != want {
			t.Errorf("both: %q, %v; want %q", got, err, want)
		}
	})

	t.Run("neither", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "bin")
		_, err := findExporter(bin, euid)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(bin, ExporterProgram)) ||
			!strings.Contains(err.Error(), "install klp's package") {
			t.Errorf("got %v, want an error naming both places and the fix", err)
		}
	})

	for _, c := range []struct {
		name string
		mode os.FileMode
		dir  bool
		want string
	}{
		{name: "group-writable", mode: 0o775, want: "writable by group or others (mode 0775), refused"},
		{name: "world-writable", mode: 0o757, want: "writable by group or others (mode 0757), refused"},
		{name: "not executable", mode: 0o644, want: "not executable (mode 0644)"},
		{name: "another user's", mode: 0o755, want: "owned by another user than root or klp's, refused"},
		{name: "a directory", mode: 0o755, dir: true, want: "not a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			path := filepath.Join(bin, ExporterProgram)
			if c.dir {
				if err := os.Mkdir(path, c.mode); err != nil {
					t.Fatal(err)
				}
			} else {
				write(t, path, c.mode)
			}
			runAs := euid
			if c.name == "another user's" {
				// root gives the file away; another user's own file is
				// checked as if a third user ran klp.
				if runAs == 0 {
					if err := os.Chown(path, 4242, 4242); err != nil {
						t.Fatal(err)
					}
				} else {
					runAs++
				}
			}
			_, err := findExporter(bin, runAs)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want %q about %s", err, c.want, path)
			}
		})
	}
}
