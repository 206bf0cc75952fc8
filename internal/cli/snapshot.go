package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/internal/snapshot"
)

func newSnapshotCmd(opts *rootOptions) *cobra.Command {
	var out, show string
	var redact bool
	cmd := &cobra.Command{
		Use:   "snapshot [-o FILE] [--redact]",
		Short: "Capture the live patching state in one file, to diagnose it anywhere",
		Long: `Capture what klp reads about live patching into one compressed archive
(tar, zstd), to be read anywhere with klp --snapshot FILE COMMAND: the
live patching tree of /sys/kernel, the live patch modules and the modules
they patch under /sys/module, /proc/modules, each task's patch_state, comm,
stat and command line, the stack of each task that blocks a transition, the
kernel command line, taint, lockdown, signature enforcement and the sysctls
preflight reads, the kernel config, /proc/kallsyms (addresses zeroed), the
ftrace lists, the kernel's live patching log, the installed patches and
their packages. A manifest says where and when, what was captured, what
could not be read and why, and whether the transition moved meanwhile.

The archive is written to FILE (default
klp-snapshot-HOST-YYYYMMDDTHHMMSSZ.tar.zst in the current directory; - is
stdout), readable by its owner only. Command lines can hold secrets:
--redact replaces each by the executable's name, and is what a snapshot
sent out of the machine should use. Run as root: stacks, the ftrace lists
and the kernel log need it.

With --show FILE, klp prints the manifest of a snapshot instead. With
--snapshot FILE, klp snapshot captures that snapshot again (with --redact,
a redacted copy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if show != "" {
				if cmd.Flags().Changed("output") || redact {
					return &usageError{errors.New("snapshot: --show reads a snapshot; -o and --redact are for taking one")}
				}
				return snapshotShowRun(opts, show)
			}
			return snapshotRun(opts, out, redact)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the archive to `FILE` (- for stdout)")
	cmd.Flags().BoolVar(&redact, "redact", false, "replace process command lines by the executable's name")
	cmd.Flags().StringVar(&show, "show", "", "print the manifest of the snapshot `FILE`")
	_ = cmd.RegisterFlagCompletionFunc("show", snapshotCompletion)
	return cmd
}

func snapshotRun(opts *rootOptions, out string, redact bool) error {
	sys, err := opts.system()
	if err != nil {
		return err
	}
	sopts := admin.SnapshotOptions{
		Redact: redact, Version: version, Installed: opts.installed(), Packages: opts.packages(),
		Root: opts.env.Geteuid == nil || opts.env.Geteuid() == 0,
	}
	for _, d := range []string{opts.env.Store.Dir, opts.env.Store.Kpatch} {
		if d != "" {
			sopts.StoreDirs = append(sopts.StoreDirs, d)
		}
	}
	if opts.snapshotFile != "" {
		a, _ := opts.archive() // read by system() already
		m := a.Manifest()
		sopts.Origin, sopts.StoreDirs = &m, m.Store.Dirs
	}
	if out == "-" {
		if opts.env.IO.OutTTY {
			return &exitError{code: ExitError, msg: "snapshot: not writing a compressed archive to a terminal; redirect it, or give -o FILE"}
		}
		if opts.json {
			return &usageError{errors.New("snapshot: -o - writes the archive to stdout, where --json would print its document")}
		}
	}
	if out == "" {
		host := sys.Host()
		if sopts.Origin != nil && sopts.Origin.Host != nil {
			host = *sopts.Origin.Host
		}
		out = defaultSnapshotName(host, time.Now())
	}
	ctx, stop := opts.interruptible()
	defer stop()
	var m *snapshot.Manifest
	var size int64
	capture := func(w io.Writer) error {
		var err error
		m, size, err = sys.Snapshot(ctx, w, sopts)
		return err
	}
	if out == "-" {
		err = capture(opts.env.IO.Out)
	} else {
		err = writeFileAtomic(out, capture)
	}
	if err != nil {
		return &exitError{code: ExitCode(admin.ExitCode(err)), msg: "snapshot: " + err.Error()}
	}
	if opts.json {
		return report.Write(opts.env.IO.Out, report.NewSnapshot(m, out, size))
	}
	w := opts.env.IO.Out
	if out == "-" {
		w = opts.env.IO.ErrOut
	}
	printSnapshot(w, m, out, size, opts.verbose)
	return nil
}

func snapshotShowRun(opts *rootOptions, file string) error {
	a, err := snapshot.Open(file)
	if err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	m := a.Manifest()
	if opts.json {
		return report.Write(opts.env.IO.Out, report.NewSnapshot(&m, file, a.Size()))
	}
	printSnapshot(opts.env.IO.Out, &m, file, a.Size(), max(opts.verbose, 1))
	return nil
}

// defaultSnapshotName is klp-snapshot-HOST-TIME.tar.zst, with only the
// host name's safe characters.
func defaultSnapshotName(host string, t time.Time) string {
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return -1
	}, host)
	host = strings.Trim(host, ".")
	if host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("klp-snapshot-%s-%s.tar.zst", host, t.UTC().Format("20060102T150405Z"))
}

// writeFileAtomic writes path through a temporary file in its directory,
// renamed once complete: a failed capture leaves no half archive. The file
// is readable by its owner only: a snapshot describes the machine.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".klp-snapshot-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// printSnapshot describes a snapshot: the first lines always, the
// captured files and the notes with -v.
func printSnapshot(w io.Writer, m *snapshot.Manifest, file string, size int64, verbose int) {
	if file == "-" {
		file = "(stdout)"
	}
	fmt.Fprintf(w, "%s: %d bytes\n", file, size)
	host := "(unknown host)"
	if m.Host != nil {
		host = *m.Host
	}
	fmt.Fprintf(w, "  %s, kernel %s (%s), %s, taken %s in %.1fs by klp %s\n", host, orUnknown(m.Kernel.Release), m.Kernel.Interface,
		m.Source, m.Time.Format(time.RFC3339), float64(m.DurationMS)/1000, m.KlpVersion)
	tr := "no transition in progress"
	if t := m.Transition.Before; t != nil {
		tr = "transition: " + transitionText(t)
	}
	switch {
	case m.Transition.Moved:
		after := "none"
		if m.Transition.After != nil {
			after = transitionText(m.Transition.After)
		}
		tr += fmt.Sprintf(", then %s: it moved during the capture", after)
	case m.Transition.Before != nil:
		tr += ", unchanged during the capture"
	}
	fmt.Fprintf(w, "  %s\n", tr)
	for _, c := range m.Captured {
		if c.What == "tasks" || c.What == "stacks" {
			fmt.Fprintf(w, "  %s: %s\n", c.What, c.Paths[len(c.Paths)-1])
		}
	}
	if m.Redacted {
		fmt.Fprintln(w, "  command lines: redacted (the executable's name only)")
	} else {
		fmt.Fprintln(w, "  command lines: as they were (klp snapshot --redact to send it out)")
	}
	if m.UnreadableTotal > 0 {
		fmt.Fprintf(w, "  could not read %d file(s):\n", m.UnreadableTotal)
		for i, u := range m.Unreadable {
			if verbose == 0 && i == 3 {
				fmt.Fprintf(w, "    ... (-v lists them)\n")
				break
			}
			fmt.Fprintf(w, "    %s: %s\n", u.Path, u.Error)
		}
	}
	if verbose > 0 {
		fmt.Fprintln(w, "  captured:")
		for _, c := range m.Captured {
			fmt.Fprintf(w, "    %-9s %6d file(s) %10d bytes  %s\n", c.What, c.Files, c.Bytes, strings.Join(c.Paths, ", "))
		}
		fmt.Fprintf(w, "  installed patches listed: %d; package records: %d\n", len(m.Store.Installed), len(m.Packages))
	}
	for _, n := range m.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func transitionText(t *snapshot.Transition) string {
	direction := "patching"
	if t.Target == "unpatched" {
		direction = "unpatching"
	}
	if t.Patch == nil {
		return "a kGraft patch " + direction
	}
	return *t.Patch + " " + direction
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
