package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/livepatch"
)

func newPatchesCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "patches",
		Short: "Display the list of loaded patches",
		Long: `Display the list of loaded patches, one name per line.

With -v, each patch is followed by whether it is active (in use, or can be
unloaded), the package that installed it (RPM:, or DEB: on Debian-family
systems), the CVEs it fixes and its other bug fixes, from the package
changelog. A second -v adds the patch's expiration and update status.

With -v, a function of the patch that another user overrides is listed as
"overridden: FUNCTION by USER": a BPF fmod_ret or LSM program, or a kprobe
program that calls bpf_override_return(), makes callers get its value
rather than the patch's, and the kernel says nothing (see klp list).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return patchesRun(opts)
		},
	}
}

func patchesRun(opts *rootOptions) error {
	sys, err := opts.system()
	if err != nil {
		return err
	}
	// Package questions run external programs: only when asked for.
	pl, err := sys.Patches(opts.packages(), opts.verbose)
	if err != nil {
		return err
	}
	for _, d := range pl.Diagnostics {
		if d.Err != nil {
			fmt.Fprintf(opts.env.IO.ErrOut, "%s: %v\n", opts.prog, d.Err)
		} else {
			fmt.Fprintf(opts.env.IO.ErrOut, "%s: note: %s\n", opts.prog, d.Note)
		}
	}
	if opts.json {
		return report.Write(opts.env.IO.Out, report.NewPatches(pl))
	}
	initial := "(none - this is an initial kernel live patch)"
	if pl.Interface == livepatch.InterfaceKGraft {
		initial = "(none - this is an initial kGraft patch)"
	}
	printPatches(opts.env.IO.Out, pl.Patches, opts.verbose, initial)
	return nil
}

// packages returns the Env's package source bound to the --procfs root,
// so that a copied tree of another machine is answered for that machine's
// kernel, or what a snapshot recorded, or nil when there is none.
func (o *rootOptions) packages() admin.PackageSource {
	if o.snapshotFile != "" {
		// The snapshot's machine's packages, as recorded: this
		// machine's package manager knows nothing of them.
		if a, err := o.archive(); err == nil {
			return admin.RecordedPackages(a.Manifest().Packages)
		}
		return nil
	}
	if p, ok := o.env.Packages.(*admin.Packages); ok {
		return p.ForProcRoot(o.procRoot)
	}
	return o.env.Packages
}

// printPatches prints SUSE's layout: the name at column 0, then "key: value"
// lines indented by four spaces, blocks separated by an empty line. The keys
// are exactly SUSE's (lower-case active, upper-case RPM and CVE), because
// SUSE's own tests parse them.
func printPatches(w io.Writer, patches []admin.PatchEntry, verbose int, initial string) {
	for i, p := range patches {
		if verbose > 0 && i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, printable(p.Name))
		if verbose == 0 {
			continue
		}
		fmt.Fprintf(w, "    active: %d\n", b2i(p.Active))
		// Not SUSE's: a line per function whose patch another user
		// overrides (BPF fmod_ret, LSM, bpf_override_return).
		for _, fu := range p.OtherUsers {
			for _, u := range fu.Overriders() {
				key := "overridden"
				if u.Effect == ftrace.MayOverride {
					key = "may be overridden"
				}
				fmt.Fprintf(w, "    %s: %s by %s\n", key, printable(fu.Function), printable(u.String()))
			}
		}
		pkg := p.Package
		if pkg == nil {
			continue
		}
		fmt.Fprintf(w, "    %s: %s\n", pkg.Key(), printable(pkg.Full))
		cves := initial
		if len(pkg.CVEs) > 0 {
			cves = printable(strings.Join(pkg.CVEs, " "))
		}
		fmt.Fprintf(w, "    CVE: %s\n", cves)
		bugs := "(none)"
		if len(pkg.Bugs) > 0 {
			bugs = printable(strings.Join(pkg.Bugs, " "))
		}
		fmt.Fprintf(w, "    bug fixes and enhancements: %s\n", bugs)
		if verbose >= 2 {
			exp := pkg.Expiration
			if exp == "" {
				exp = "(unknown)"
			}
			upd := pkg.Update
			if upd == "" {
				upd = "(unknown)"
			}
			fmt.Fprintf(w, "    expiration: %s\n", exp)
			fmt.Fprintf(w, "    update: %s\n", upd)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
