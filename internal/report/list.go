package report

import (
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/store"
)

// List is `klp list --json`.
type List struct {
	SchemaVersion int         `json:"schema_version"`
	Release       *string     `json:"release"` // null when unreadable
	Loaded        []Loaded    `json:"loaded"`
	Installed     []Installed `json:"installed"`
	Functions     []Provided  `json:"functions"`
}

// Loaded is one loaded patch or patch module.
type Loaded struct {
	Name       string  `json:"name"`
	State      string  `json:"state"`
	Replace    *bool   `json:"replace"`
	ReplaceSet *uint32 `json:"replace_set"`
	StackOrder *int    `json:"stack_order"`
}

// Installed is one installed patch module file.
type Installed struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Path    string `json:"path"`
	Source  string `json:"source"`
}

// Provided is one patched function.
type Provided struct {
	Object     string   `json:"object"`
	Function   string   `json:"function"`
	Sympos     int      `json:"sympos"`
	Patches    []string `json:"patches"`
	ProvidedBy *string  `json:"provided_by"`
	// ProvidedByBasis says how provided_by was determined: "only_patch",
	// "stack_order" (the kernel's word) or "load_order" (inferred).
	ProvidedByBasis *string `json:"provided_by_basis"`
}

func installed(in store.Installed) Installed {
	return Installed{Name: in.Name, Release: in.Release, Path: in.Path, Source: in.Source}
}

// NewList builds the list document.
func NewList(l *admin.List) List {
	doc := List{SchemaVersion: Version, Release: optString(l.Release), Loaded: []Loaded{}, Installed: []Installed{}, Functions: []Provided{}}
	for _, p := range l.Loaded {
		doc.Loaded = append(doc.Loaded, Loaded{Name: p.Name, State: string(p.State), Replace: p.Replace, ReplaceSet: p.ReplaceSet, StackOrder: p.StackOrder})
	}
	for _, in := range l.Installed {
		doc.Installed = append(doc.Installed, installed(in))
	}
	for _, f := range l.Functions {
		doc.Functions = append(doc.Functions, Provided{Object: f.Object, Function: f.Function, Sympos: f.Sympos,
			Patches: nonNil(f.Patches), ProvidedBy: optString(f.ProvidedBy), ProvidedByBasis: optString(string(f.Basis))})
	}
	return doc
}

// Install is `klp install --json` and `klp uninstall --json`.
type Install struct {
	SchemaVersion int       `json:"schema_version"`
	Action        string    `json:"action"`
	Installed     Installed `json:"installed"`
}

// NewInstall builds the install or uninstall document.
func NewInstall(r *admin.InstallResult) Install {
	return Install{SchemaVersion: Version, Action: r.Action, Installed: installed(r.Installed)}
}

// Downgrade is `klp downgrade --json`.
type Downgrade struct {
	SchemaVersion int      `json:"schema_version"`
	Patch         string   `json:"patch"`
	Manager       string   `json:"manager"`
	Package       string   `json:"package"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Command       []string `json:"command"`
	Ran           bool     `json:"ran"`
}

// NewDowngrade builds the downgrade document of a plan; ran says whether its
// command was started.
func NewDowngrade(d *admin.Downgrade, ran bool) Downgrade {
	doc := Downgrade{SchemaVersion: Version, Patch: d.Patch, Ran: ran}
	if p := d.Plan; p != nil {
		doc.Manager, doc.Package, doc.From, doc.To, doc.Command = p.Manager, p.Package, p.From, p.To, p.Command
	}
	return doc
}
