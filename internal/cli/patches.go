package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

// PackageSource finds the package that installed a patch module and what
// its changelog says, for patches -v. It runs rpm, dpkg and zypper, so it
// sits behind an interface that tests replace.
type PackageSource interface {
	// Describe returns the package owning the module file of the named
	// loaded patch, or nil when no package owns it. With verbose >= 2 it
	// also fills in expiration and update status. Notes are things the user
	// should know about missing information (a missing rpm, say).
	Describe(module string, verbose int) (pkg *PackageInfo, notes []string, err error)
}

// PackageInfo describes the package of a patch module.
type PackageInfo struct {
	// Manager is "rpm" or "dpkg".
	Manager string `json:"manager"`
	// Name is the package name, e.g. kernel-livepatch-5_14_21-150400_24_33-default.
	Name string `json:"name"`
	// Version and Release are the package's version and release (Release is
	// empty for dpkg, whose version holds both).
	Version string `json:"version"`
	Release string `json:"release"`
	// Arch is the package architecture.
	Arch string `json:"arch"`
	// Full is the text SUSE prints after "RPM: ": NAME-VERSION-RELEASE.ARCH
	// for rpm, NAME_VERSION_ARCH for dpkg.
	Full string `json:"full"`
	// CVEs are the CVE ids in the changelog, unique, newest first.
	CVEs []string `json:"cves"`
	// Bugs are the bug references of changelog entries without a CVE.
	Bugs []string `json:"bugs"`
	// Expiration is the end of support (YYYY-MM-DD) from the lifecycle data,
	// empty when unknown; filled with -vv.
	Expiration string `json:"expiration,omitempty"`
	// Update says whether a newer package is available; filled with -vv.
	Update string `json:"update,omitempty"`
}

func (p *PackageInfo) key() string {
	if p.Manager == "dpkg" {
		return "DEB"
	}
	return "RPM"
}

type jsonPatches struct {
	SchemaVersion int         `json:"schema_version"`
	Interface     string      `json:"interface"`
	Patches       []jsonPatch `json:"patches"`
}

type jsonPatch struct {
	Name       string        `json:"name"`
	Active     bool          `json:"active"`
	Enabled    *bool         `json:"enabled,omitempty"`
	Transition *bool         `json:"transition"`
	Replace    *bool         `json:"replace"`
	StackOrder *int          `json:"stack_order"`
	HasForce   bool          `json:"has_force"`
	HasSignal  bool          `json:"has_signal"`
	Objects    []jsonObject  `json:"objects"`
	Package    *PackageInfo  `json:"package"`
	KGraft     *jsonKGraftPt `json:"kgraft,omitempty"`
}

type jsonKGraftPt struct {
	Refs       *int                       `json:"refs"`
	ReplaceAll *bool                      `json:"replace_all"`
	Functions  []livepatch.KGraftFunction `json:"functions"`
}

type jsonObject struct {
	Name      string         `json:"name"`
	Patched   *bool          `json:"patched"`
	Functions []jsonFunction `json:"functions"`
}

type jsonFunction struct {
	Name   string `json:"name"`
	Sympos int    `json:"sympos"`
}

func newPatchesCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "patches",
		Short: "Display the list of loaded patches",
		Long: `Display the list of loaded patches, one name per line.

With -v, each patch is followed by whether it is active (in use, or can be
unloaded), the package that installed it (RPM:, or DEB: on Debian-family
systems), the CVEs it fixes and its other bug fixes, from the package
changelog. A second -v adds the patch's expiration and update status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return patchesRun(opts)
		},
	}
}

func patchesRun(opts *rootOptions) error {
	fs, err := opts.fs()
	if err != nil {
		return err
	}
	doc := jsonPatches{SchemaVersion: SchemaVersion, Interface: string(fs.Interface()), Patches: []jsonPatch{}}
	switch fs.Interface() {
	case livepatch.InterfaceLivepatch:
		patches, err := fs.Patches()
		if err != nil {
			return err
		}
		for _, p := range patches {
			doc.Patches = append(doc.Patches, toJSONPatch(p))
		}
	case livepatch.InterfaceKGraft:
		patches, err := fs.KGraftPatches()
		if err != nil {
			return err
		}
		for _, p := range patches {
			doc.Patches = append(doc.Patches, jsonPatch{
				Name: p.Name, Active: p.Active, Objects: []jsonObject{},
				KGraft: &jsonKGraftPt{Refs: p.Refs, ReplaceAll: p.ReplaceAll, Functions: p.Functions},
			})
		}
	}

	// Package questions run external programs: only when asked for.
	if src := opts.packages(); opts.verbose > 0 && src != nil {
		seen := map[string]bool{}
		for i := range doc.Patches {
			pkg, notes, err := src.Describe(doc.Patches[i].Name, opts.verbose)
			if err != nil {
				fmt.Fprintf(opts.env.IO.ErrOut, "%s: %s: %v\n", opts.prog, doc.Patches[i].Name, err)
			}
			doc.Patches[i].Package = pkg
			for _, n := range notes {
				if !seen[n] {
					seen[n] = true
					fmt.Fprintf(opts.env.IO.ErrOut, "%s: note: %s\n", opts.prog, n)
				}
			}
		}
	}

	if opts.json {
		return writeJSON(opts.env.IO.Out, doc)
	}
	initial := "(none - this is an initial kernel live patch)"
	if fs.Interface() == livepatch.InterfaceKGraft {
		initial = "(none - this is an initial kGraft patch)"
	}
	printPatches(opts.env.IO.Out, doc.Patches, opts.verbose, initial)
	return nil
}

func toJSONPatch(p livepatch.Patch) jsonPatch {
	enabled := p.Enabled
	jp := jsonPatch{
		Name: p.Name, Active: p.Enabled, Enabled: &enabled, Transition: p.Transition,
		Replace: p.Replace, StackOrder: p.StackOrder, HasForce: p.HasForce, HasSignal: p.HasSignal,
		Objects: []jsonObject{},
	}
	for _, o := range p.Objects {
		jo := jsonObject{Name: o.Name, Patched: o.Patched, Functions: []jsonFunction{}}
		for _, f := range o.Functions {
			jo.Functions = append(jo.Functions, jsonFunction{Name: f.Name, Sympos: f.Sympos})
		}
		jp.Objects = append(jp.Objects, jo)
	}
	return jp
}

// printPatches prints SUSE's layout: the name at column 0, then "key: value"
// lines indented by four spaces, blocks separated by an empty line. The keys
// are exactly SUSE's (lower-case active, upper-case RPM and CVE), because
// SUSE's own tests parse them.
func printPatches(w io.Writer, patches []jsonPatch, verbose int, initial string) {
	for i, p := range patches {
		if verbose > 0 && i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, p.Name)
		if verbose == 0 {
			continue
		}
		fmt.Fprintf(w, "    active: %d\n", b2i(p.Active))
		pkg := p.Package
		if pkg == nil {
			continue
		}
		fmt.Fprintf(w, "    %s: %s\n", pkg.key(), pkg.Full)
		cves := initial
		if len(pkg.CVEs) > 0 {
			cves = strings.Join(pkg.CVEs, " ")
		}
		fmt.Fprintf(w, "    CVE: %s\n", cves)
		bugs := "(none)"
		if len(pkg.Bugs) > 0 {
			bugs = strings.Join(pkg.Bugs, " ")
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
