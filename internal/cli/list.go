package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/klp-project/klp/internal/lifecycle"
	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

type jsonList struct {
	SchemaVersion int                   `json:"schema_version"`
	Release       string                `json:"release"`
	Loaded        []jsonLoaded          `json:"loaded"`
	Installed     []lifecycle.Installed `json:"installed"`
	Functions     []jsonProvided        `json:"functions"`
}

type jsonLoaded struct {
	Name       string `json:"name"`
	State      string `json:"state"` // enabled, disabled, patching, unpatching, superseded, pinned
	Replace    *bool  `json:"replace"`
	StackOrder *int   `json:"stack_order"`
}

type jsonProvided struct {
	Object   string   `json:"object"`
	Function string   `json:"function"`
	Sympos   int      `json:"sympos"`
	Patches  []string `json:"patches"`
	// ProvidedBy is the patch whose code runs: the highest stack_order.
	// null when the kernel cannot tell (no stack_order, several patches).
	ProvidedBy *string `json:"provided_by"`
}

func newListCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List loaded and installed patches, and the patched functions",
		Long: `List the loaded patches with their state (enabled, disabled, patching,
unpatching; superseded: a module an atomic replace left loaded; pinned: a
module that a force keeps loaded until reboot), the
patches installed for each kernel (klp's /var/lib/klp and kpatch's
/var/lib/kpatch), and every patched function with the patch that provides
it. When several patches change one function, the one with the highest
stack_order runs; kernels before 6.14 do not say which, and neither does
klp then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return listRun(opts)
		},
	}
}

func listRun(opts *rootOptions) error {
	fs, err := opts.fs()
	if err != nil {
		return err
	}
	m := &lifecycle.Manager{LP: fs}
	doc := jsonList{SchemaVersion: SchemaVersion, Loaded: []jsonLoaded{}, Installed: []lifecycle.Installed{}, Functions: []jsonProvided{}}
	doc.Release, _ = m.Release()
	var patches []livepatch.Patch
	if fs.Interface() == livepatch.InterfaceLivepatch {
		if patches, err = fs.Patches(); err != nil {
			return err
		}
	}
	for _, p := range patches {
		state := "enabled"
		switch {
		case p.InTransition() && p.Enabled:
			state = "patching"
		case p.InTransition():
			state = "unpatching"
		case !p.Enabled:
			state = "disabled"
		}
		doc.Loaded = append(doc.Loaded, jsonLoaded{Name: p.Name, State: state, Replace: p.Replace, StackOrder: p.StackOrder})
	}
	// Patch modules without a patch directory: an atomic replace or a
	// disable left them loaded with no reference (superseded, removable),
	// or a force pinned them (the kernel keeps their reference).
	if mgr, err := opts.manager(); err == nil {
		if names, err := mgr.LivepatchModules(); err == nil {
			live := map[string]bool{}
			for _, p := range patches {
				live[p.Name] = true
			}
			for _, n := range names {
				if live[n] {
					continue
				}
				state := "superseded"
				if ref, err := mgr.Mod.Refcnt(n); err == nil && ref > 0 {
					state = "pinned"
				}
				doc.Loaded = append(doc.Loaded, jsonLoaded{Name: n, State: state})
			}
		}
	}
	if doc.Installed, err = opts.env.Store.List(""); err != nil {
		return err
	}
	if doc.Installed == nil {
		doc.Installed = []lifecycle.Installed{}
	}
	doc.Functions = providers(patches)

	if opts.json {
		return writeJSON(opts.env.IO.Out, doc)
	}
	w := tabwriter.NewWriter(opts.env.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "Loaded patches:")
	if len(doc.Loaded) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  NAME\tSTATE\tREPLACE\tSTACK ORDER")
		for _, l := range doc.Loaded {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", l.Name, l.State, optBool(l.Replace), optInt(l.StackOrder))
		}
	}
	fmt.Fprintln(w, "\nInstalled patches:")
	if len(doc.Installed) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  NAME\tKERNEL\tSOURCE\tFILE")
		for _, in := range doc.Installed {
			kernel := in.Release
			if in.Release == doc.Release {
				kernel += " (running)"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", in.Name, kernel, in.Source, in.Path)
		}
	}
	fmt.Fprintln(w, "\nPatched functions:")
	if len(doc.Functions) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  OBJECT\tFUNCTION\tPROVIDED BY\tPATCHES")
		for _, f := range doc.Functions {
			by := "(undetermined: no stack_order on this kernel)"
			if f.ProvidedBy != nil {
				by = *f.ProvidedBy
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", f.Object, livepatch.Function{Name: f.Function, Sympos: f.Sympos}.DirName(), by, strings.Join(f.Patches, " "))
		}
	}
	return w.Flush()
}

// providers lists every patched function with the patches that change it
// and the one whose code runs: the highest stack_order (kernel-abi.md
// 1.7). Without stack_order a function changed by one patch is still
// unambiguous.
func providers(patches []livepatch.Patch) []jsonProvided {
	type key struct {
		obj, fn string
		pos     int
	}
	byKey := map[key]*jsonProvided{}
	order := map[key]int{}
	known := map[key]bool{}
	var keys []key
	for _, p := range patches {
		for _, o := range p.Objects {
			for _, f := range o.Functions {
				k := key{o.Name, f.Name, f.Sympos}
				e := byKey[k]
				if e == nil {
					e = &jsonProvided{Object: o.Name, Function: f.Name, Sympos: f.Sympos}
					byKey[k] = e
					keys = append(keys, k)
					known[k] = true
				}
				e.Patches = append(e.Patches, p.Name)
				if p.StackOrder == nil {
					known[k] = false
					continue
				}
				if *p.StackOrder > order[k] {
					order[k] = *p.StackOrder
					name := p.Name
					e.ProvidedBy = &name
				}
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.obj != b.obj {
			return a.obj < b.obj
		}
		if a.fn != b.fn {
			return a.fn < b.fn
		}
		return a.pos < b.pos
	})
	out := make([]jsonProvided, 0, len(keys))
	for _, k := range keys {
		e := byKey[k]
		if len(e.Patches) == 1 {
			name := e.Patches[0]
			e.ProvidedBy = &name
		} else if !known[k] {
			e.ProvidedBy = nil
		}
		out = append(out, *e)
	}
	return out
}

func optBool(b *bool) string {
	if b == nil {
		return "-"
	}
	if *b {
		return "yes"
	}
	return "no"
}

func optInt(n *int) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
