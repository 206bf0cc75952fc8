package report

import (
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/livepatch"
)

// Patches is `klp patches --json`.
type Patches struct {
	SchemaVersion int     `json:"schema_version"`
	Interface     string  `json:"interface"`
	Patches       []Patch `json:"patches"`
}

// Patch is one loaded patch.
type Patch struct {
	Name       string   `json:"name"`
	Active     bool     `json:"active"`
	Enabled    *bool    `json:"enabled,omitempty"`
	Transition *bool    `json:"transition"`
	Replace    *bool    `json:"replace"`
	ReplaceSet *uint32  `json:"replace_set"`
	StackOrder *int     `json:"stack_order"`
	HasForce   bool     `json:"has_force"`
	HasSignal  bool     `json:"has_signal"`
	Objects    []Object `json:"objects"`
	Package    *Package `json:"package"`
	KGraft     *KGraft  `json:"kgraft,omitempty"`
}

// Object is one patched object.
type Object struct {
	Name      string     `json:"name"`
	Patched   *bool      `json:"patched"`
	Functions []Function `json:"functions"`
}

// Function is one replaced function.
type Function struct {
	Name   string `json:"name"`
	Sympos int    `json:"sympos"`
}

// KGraft is what SLE 12's kGraft interface shows of a patch.
type KGraft struct {
	Refs       *int             `json:"refs"`
	ReplaceAll *bool            `json:"replace_all"`
	Functions  []KGraftFunction `json:"functions"`
}

// KGraftFunction is one row of a kGraft patch's state table.
type KGraftFunction struct {
	Name   string `json:"name"`
	Object string `json:"object"`
	Sympos int    `json:"sympos"`
	State  int    `json:"state"`
}

// Package is the package that installed a patch module.
type Package struct {
	Manager    string   `json:"manager"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Release    string   `json:"release"`
	Arch       string   `json:"arch"`
	Full       string   `json:"full"`
	CVEs       []string `json:"cves"`
	Bugs       []string `json:"bugs"`
	Expiration string   `json:"expiration,omitempty"`
	Update     string   `json:"update,omitempty"`
}

// NewPatches builds the patches document.
func NewPatches(pl *admin.PatchList) Patches {
	doc := Patches{SchemaVersion: Version, Interface: string(pl.Interface), Patches: []Patch{}}
	for _, e := range pl.Patches {
		var p Patch
		switch {
		case e.Upstream != nil:
			p = upstreamPatch(*e.Upstream)
		case e.KGraft != nil:
			p = Patch{Name: e.Name, Active: e.Active, Objects: []Object{}, KGraft: kgraftPatch(*e.KGraft)}
		}
		p.Package = packageDoc(e.Package)
		doc.Patches = append(doc.Patches, p)
	}
	return doc
}

func upstreamPatch(p livepatch.Patch) Patch {
	jp := Patch{
		Name: p.Name, Active: p.Enabled, Enabled: ptr(p.Enabled), Transition: p.Transition,
		Replace: p.Replace, ReplaceSet: p.ReplaceSet, StackOrder: p.StackOrder, HasForce: p.HasForce, HasSignal: p.HasSignal,
		Objects: []Object{},
	}
	for _, o := range p.Objects {
		jo := Object{Name: o.Name, Patched: o.Patched, Functions: []Function{}}
		for _, f := range o.Functions {
			jo.Functions = append(jo.Functions, Function{Name: f.Name, Sympos: f.Sympos})
		}
		jp.Objects = append(jp.Objects, jo)
	}
	return jp
}

func kgraftPatch(p livepatch.KGraftPatch) *KGraft {
	// A patch without a state table still has a list of functions: [].
	k := &KGraft{Refs: p.Refs, ReplaceAll: p.ReplaceAll, Functions: []KGraftFunction{}}
	for _, f := range p.Functions {
		k.Functions = append(k.Functions, KGraftFunction{Name: f.Name, Object: f.Object, Sympos: f.Sympos, State: f.State})
	}
	return k
}

func packageDoc(p *admin.PackageInfo) *Package {
	if p == nil {
		return nil
	}
	return &Package{
		Manager: p.Manager, Name: p.Name, Version: p.Version, Release: p.Release, Arch: p.Arch, Full: p.Full,
		CVEs: p.CVEs, Bugs: p.Bugs, Expiration: p.Expiration, Update: p.Update,
	}
}
