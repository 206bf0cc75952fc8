package report

import "github.com/klp-project/klp/modinfo"

// Info is `klp info --json`: what the module file says about itself (the
// same on every machine), plus the schema version and the file read.
type Info struct {
	SchemaVersion int    `json:"schema_version"`
	File          string `json:"file"`
	Module
}

// NewInfo builds the info document.
func NewInfo(path string, m *modinfo.Module) Info {
	return Info{SchemaVersion: Version, File: path, Module: NewModule(m)}
}

// Module is a module file's description: the part of the info document
// that package modinfo's golden files hold (docs/schema/info.schema.json's
// $defs/Module).
type Module struct {
	Compression string     `json:"compression"`
	Size        int64      `json:"size"`
	Name        string     `json:"name"`
	NameSource  string     `json:"name_source"`
	Class       string     `json:"class"`
	ByteOrder   string     `json:"byte_order"`
	Machine     string     `json:"machine"`
	Modinfo     []KeyValue `json:"modinfo"`
	Livepatch   bool       `json:"livepatch"`
	Vermagic    string     `json:"vermagic"`
	Signature   *Signature `json:"signature"`
	Targets     *Targets   `json:"targets"`
	Notes       []string   `json:"notes,omitempty"`
}

// KeyValue is one .modinfo entry.
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Signature is a module's appended signature.
type Signature struct {
	IDType             string `json:"id_type"`
	Signer             string `json:"signer,omitempty"`
	KeyID              string `json:"key_id,omitempty"`
	HashAlgorithm      string `json:"hash_algorithm,omitempty"`
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"`
	Length             int    `json:"length"`
	Undetermined       string `json:"undetermined,omitempty"`
}

// Targets is what a live patch module says it patches.
type Targets struct {
	Objects      []TargetObject  `json:"objects"`
	Functions    []Target        `json:"functions"`
	Symbols      []KlpSymbol     `json:"klp_symbols"`
	Relocations  []KlpRelocation `json:"klp_relocations"`
	Replace      *bool           `json:"replace"`
	ReplaceSet   *uint32         `json:"replace_set"`
	States       []KlpState      `json:"klp_states"`
	Undetermined string          `json:"undetermined,omitempty"`
	Notes        []string        `json:"notes,omitempty"`
}

// TargetObject is an object a patch applies to.
type TargetObject struct {
	Name    string   `json:"name"`
	Sources []string `json:"sources"`
}

// Target is one replaced function.
type Target struct {
	Object   string `json:"object"`
	Function string `json:"function"`
	Sympos   uint64 `json:"sympos"`
	Source   string `json:"source"`
}

// KlpSymbol is a .klp.sym symbol.
type KlpSymbol struct {
	Object string `json:"object"`
	Name   string `json:"name"`
	Sympos uint64 `json:"sympos"`
}

// KlpState is one struct klp_state of the patch.
type KlpState struct {
	ID      uint64 `json:"id"`
	Version uint32 `json:"version"`
}

// KlpRelocation is a .klp.rela section.
type KlpRelocation struct {
	Section string `json:"section"`
	Object  string `json:"object"`
	Applies string `json:"applies"`
	Count   int    `json:"count"`
}

// NewModule builds a module file's description.
func NewModule(m *modinfo.Module) Module {
	doc := Module{
		Compression: m.Compression, Size: m.Size, Name: m.Name, NameSource: string(m.NameSource),
		Class: m.Class, ByteOrder: m.ByteOrder, Machine: m.Machine, Livepatch: m.Livepatch,
		Vermagic: m.Vermagic, Notes: m.Notes,
	}
	if m.Info != nil {
		doc.Modinfo = []KeyValue{}
	}
	for _, kv := range m.Info {
		doc.Modinfo = append(doc.Modinfo, KeyValue{Key: kv.Key, Value: kv.Value})
	}
	if s := m.Signature; s != nil {
		doc.Signature = &Signature{IDType: s.IDType, Signer: s.Signer, KeyID: s.KeyID, HashAlgorithm: s.HashAlgorithm,
			SignatureAlgorithm: s.SignatureAlgorithm, Length: s.Length, Undetermined: s.Undetermined}
	}
	if t := m.Targets; t != nil {
		jt := &Targets{Functions: targets(t.Functions), Replace: t.Replace, ReplaceSet: t.ReplaceSet, Undetermined: t.Undetermined, Notes: t.Notes}
		if t.States != nil {
			jt.States = []KlpState{}
		}
		for _, st := range t.States {
			jt.States = append(jt.States, KlpState{ID: st.ID, Version: st.Version})
		}
		if t.Objects != nil {
			jt.Objects = []TargetObject{}
		}
		for _, o := range t.Objects {
			var srcs []string
			if o.Sources != nil {
				srcs = []string{}
			}
			for _, s := range o.Sources {
				srcs = append(srcs, string(s))
			}
			jt.Objects = append(jt.Objects, TargetObject{Name: o.Name, Sources: srcs})
		}
		if t.Symbols != nil {
			jt.Symbols = []KlpSymbol{}
		}
		for _, s := range t.Symbols {
			jt.Symbols = append(jt.Symbols, KlpSymbol{Object: s.Object, Name: s.Name, Sympos: s.Sympos})
		}
		if t.Relocations != nil {
			jt.Relocations = []KlpRelocation{}
		}
		for _, r := range t.Relocations {
			jt.Relocations = append(jt.Relocations, KlpRelocation{Section: r.Section, Object: r.Object, Applies: r.Applies, Count: r.Count})
		}
		doc.Targets = jt
	}
	return doc
}

// targets converts replaced functions; nil stays nil (JSON null), as the
// module file's description had it.
func targets(fs []modinfo.Target) []Target {
	if fs == nil {
		return nil
	}
	out := make([]Target, 0, len(fs))
	for _, f := range fs {
		out = append(out, Target{Object: f.Object, Function: f.Function, Sympos: f.Sympos, Source: string(f.Source)})
	}
	return out
}
