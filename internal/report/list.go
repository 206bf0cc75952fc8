package report

import (
	"strings"

	"github.com/klp-project/klp/ftrace"
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
	// OtherUsersError says why the other users of the patched functions
	// could not be read (functions[].other_users is then null).
	OtherUsersError *string `json:"other_users_error"`
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
	// OtherUsers are the users of the function's entry other than live
	// patching; null when they could not be read.
	OtherUsers *[]FunctionUser `json:"other_users"`
}

// FunctionUser is a user of a patched function's entry other than live
// patching: a BPF program, a kprobe, a direct call.
type FunctionUser struct {
	Kind        string  `json:"kind"`
	Effect      string  `json:"effect"`
	Program     *string `json:"program"`
	ProgramID   *uint32 `json:"program_id"`
	LinkID      *uint32 `json:"link_id"`
	Source      string  `json:"source"`
	Description string  `json:"description"`
}

func functionUser(u ftrace.User) FunctionUser {
	fu := FunctionUser{Kind: u.Kind, Effect: string(u.Effect), Source: u.Source, Description: u.String()}
	if strings.HasPrefix(u.Kind, "bpf_") {
		fu.Program, fu.ProgramID, fu.LinkID = ptr(u.Program), ptr(u.ProgramID), ptr(u.LinkID)
	}
	return fu
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
	users := map[ftrace.Func][]FunctionUser{}
	for _, fu := range l.OtherUsers {
		for _, u := range fu.Users {
			k := ftrace.Func{Object: fu.Object, Name: fu.Function}
			users[k] = append(users[k], functionUser(u))
		}
	}
	for _, f := range l.Functions {
		p := Provided{Object: f.Object, Function: f.Function, Sympos: f.Sympos,
			Patches: nonNil(f.Patches), ProvidedBy: optString(f.ProvidedBy), ProvidedByBasis: optString(string(f.Basis))}
		if l.OtherUsersErr == nil {
			p.OtherUsers = ptr(nonNil(users[ftrace.Func{Object: f.Object, Name: f.Function}]))
		}
		doc.Functions = append(doc.Functions, p)
	}
	doc.OtherUsersError = errString(l.OtherUsersErr)
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
