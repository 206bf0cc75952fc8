package report

import (
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/modinfo"
)

// Preflight is `klp preflight --json`.
type Preflight struct {
	SchemaVersion int              `json:"schema_version"`
	Module        *PreflightModule `json:"module"`
	Checks        []Check          `json:"checks"`
	Result        preflight.Status `json:"result"`
}

// PreflightModule is the module a preflight checked.
type PreflightModule struct {
	File      string           `json:"file"`
	Name      string           `json:"name"`
	Vermagic  string           `json:"vermagic"`
	Livepatch bool             `json:"livepatch"`
	Signed    bool             `json:"signed"`
	Replace   *bool            `json:"replace"`
	Functions []modinfo.Target `json:"functions"`
}

// NewPreflight builds the preflight document; path is the module file read.
func NewPreflight(rep *preflight.Report, path string) Preflight {
	doc := Preflight{SchemaVersion: Version, Checks: checks(rep.Checks), Result: rep.Result()}
	if m := rep.Module; m != nil {
		jm := &PreflightModule{File: path, Name: m.Name, Vermagic: m.Vermagic, Livepatch: m.Livepatch,
			Signed: m.Signature != nil, Functions: []modinfo.Target{}}
		if m.Targets != nil {
			jm.Replace = m.Targets.Replace
			jm.Functions = m.Targets.Functions
		}
		doc.Module = jm
	}
	return doc
}

// Info is `klp info --json`: the module file's own description (modinfo's
// Module, whose JSON names are stable: see modinfo/testdata/golden), plus
// the schema version and the file that was read.
type Info struct {
	SchemaVersion int    `json:"schema_version"`
	File          string `json:"file"`
	*modinfo.Module
}

// NewInfo builds the info document.
func NewInfo(path string, m *modinfo.Module) Info {
	return Info{SchemaVersion: Version, File: path, Module: m}
}
