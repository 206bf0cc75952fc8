package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/store"
)

// ExporterProgram is the program that serves klp metrics and klp exporter.
//
// Those two commands need Prometheus's libraries (its client, protobuf,
// the exporter toolkit, net/http and TLS). Linked into klp, they took 73 of
// its 159 package initialisers and 7 of its 16.5 MB, which every command
// paid at its start and its exit, klp wait's return after a transition
// among them (docs/performance.md). So they are linked only into
// klp-exporter (cmd/klp-exporter, internal/exporter), and klp runs them
// by executing it.
const ExporterProgram = "klp-exporter"

// Exporter runs klp metrics and klp exporter. Env.Exporter holds one only
// in klp-exporter; klp's is nil.
type Exporter interface {
	// Metrics prints one scrape, or writes it into Textfile's klp.prom.
	Metrics(MetricsRequest) error
	// Serve serves the scrapes over HTTP until it fails.
	Serve(ServeRequest) error
}

// MetricsRequest is what klp metrics asks of an Exporter.
type MetricsRequest struct {
	System  *admin.System
	Version string
	Store   store.Store
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	Out io.Writer
	// Textfile is the directory of --textfile ("": print to Out).
	Textfile string
}

// ServeRequest is what klp exporter asks of an Exporter: node_exporter's
// web flags.
type ServeRequest struct {
	MetricsRequest
	Listen        []string
	SystemdSocket bool
	ConfigFile    string
	TelemetryPath string
	// Log receives the server's log.
	Log io.Writer
}

// metricsRequest opens the read side for the exporter's commands.
func (o *rootOptions) metricsRequest() (MetricsRequest, error) {
	sys, err := o.system()
	if err != nil {
		return MetricsRequest{}, err
	}
	return MetricsRequest{System: sys, Version: version, Store: o.env.Store, Now: o.env.Now, Out: o.env.IO.Out}, nil
}

// execExporter hands the command line, already checked by klp's own flag
// parsing, to klp-exporter.
func (o *rootOptions) execExporter() error {
	if o.env.ExecExporter == nil {
		return &exitError{code: ExitError, msg: "this klp cannot run " + ExporterProgram + " (no Env.ExecExporter)"}
	}
	if err := o.env.ExecExporter(o.args); err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	return nil
}

// execExporterProgram replaces klp's process with klp-exporter's, given klp's
// arguments: the same process, so that signals, the exit status and
// systemd's socket activation (LISTEN_PID names the process) reach the
// exporter as they reached klp. It returns only on failure.
func execExporterProgram(args []string) error {
	path, err := exporterPath()
	if err != nil {
		return err
	}
	err = unix.Exec(path, append([]string{"klp"}, args...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}

// exporterPath finds klp-exporter for the running klp (findExporter).
// The directory is the one the kernel names for klp's own executable,
// never $PATH's.
func exporterPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", ExporterProgram, err)
	}
	return findExporter(filepath.Dir(exe), os.Geteuid())
}

// findExporter finds klp-exporter beside klp, in dir (a build tree, make
// install, the test guests), or in ../libexec/klp from there (the
// packages). The program runs with klp's privileges, so it must be a
// regular file that only root or klp's user (euid) can change.
func findExporter(dir string, euid int) (string, error) {
	candidates := []string{
		filepath.Join(dir, ExporterProgram),
		filepath.Join(filepath.Dir(dir), "libexec", "klp", ExporterProgram),
	}
	for _, path := range candidates {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("find %s: %w", ExporterProgram, err)
		}
		if err := checkProgram(path, fi, euid); err != nil {
			return "", err
		}
		return path, nil
	}
	return "", fmt.Errorf("find %s: %w: klp metrics and klp exporter are served by %s, which is neither %s nor %s; install klp's package, or build it beside klp (make build)",
		ExporterProgram, fs.ErrNotExist, ExporterProgram, candidates[0], candidates[1])
}

// checkProgram refuses a program that another user could have replaced.
func checkProgram(path string, fi fs.FileInfo, euid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("run %s: not a regular file (%s)", path, fi.Mode().Type())
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("run %s: not executable (mode %04o): chmod 0755 it", path, fi.Mode().Perm())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("run %s: writable by group or others (mode %04o), refused: chmod go-w it", path, fi.Mode().Perm())
	case !ok || (st.Uid != 0 && int(st.Uid) != euid):
		return fmt.Errorf("run %s: owned by another user than root or klp's, refused: chown it to root", path)
	}
	return nil
}
