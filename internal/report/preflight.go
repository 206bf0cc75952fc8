package report

import (
	"github.com/klp-project/klp/internal/preflight"
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
	File       string   `json:"file"`
	Name       string   `json:"name"`
	Vermagic   string   `json:"vermagic"`
	Livepatch  bool     `json:"livepatch"`
	Signed     bool     `json:"signed"`
	Replace    *bool    `json:"replace"`
	ReplaceSet *uint32  `json:"replace_set"`
	Functions  []Target `json:"functions"`
}

// NewPreflight builds the preflight document; path is the module file read.
func NewPreflight(rep *preflight.Report, path string) Preflight {
	doc := Preflight{SchemaVersion: Version, Checks: checks(rep.Checks), Result: rep.Result()}
	if m := rep.Module; m != nil {
		jm := &PreflightModule{File: path, Name: m.Name, Vermagic: m.Vermagic, Livepatch: m.Livepatch,
			Signed: m.Signature != nil, Functions: []Target{}}
		if m.Targets != nil {
			jm.Replace, jm.ReplaceSet = m.Targets.Replace, m.Targets.ReplaceSet
			jm.Functions = targets(m.Targets.Functions)
		}
		doc.Module = jm
	}
	return doc
}
