// Package report builds the JSON documents klp prints with --json, from the
// values the use cases (package admin) return. It is the only package that
// knows their shape: docs/json.md describes them and docs/schema/ publishes a
// JSON Schema for each, against which the tests validate every document.
//
// Each document carries its own schema_version. It changes only when a field
// of that document is removed or changes meaning; new fields may appear
// within a version.
package report

import (
	"encoding/json"
	"errors"
	"io"
	"os"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/livepatch"
)

// Schema versions of the documents.
const (
	// Version is the version of every document but the outcome.
	Version = 1
	// OutcomeVersion is the version of the life-cycle outcome document,
	// which load --all and unload --all share since version 2.
	OutcomeVersion = 2
)

// Write prints one document, indented, with no HTML escaping (a '<' in a
// command line stays a '<').
func Write(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

// Transition is the transition in progress.
type Transition struct {
	Patch  *string `json:"patch"`  // null on kGraft, which does not name it
	Target string  `json:"target"` // "patched" or "unpatched"
}

func transition(t *livepatch.Transition) *Transition {
	if t == nil {
		return nil
	}
	jt := &Transition{Target: t.Target.String()}
	if t.Patch != "" {
		jt.Patch = ptr(t.Patch)
	}
	return jt
}

func ptr[T any](v T) *T { return &v }

// optString is null for "" (a value that is unknown), else the string.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nonNil turns a nil slice into an empty one: lists are [] in JSON, never
// null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// errText gives the locale-independent text of an error, without the path
// that the document already carries.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error()
}

func errString(err error) *string {
	if err == nil {
		return nil
	}
	return ptr(err.Error())
}

// Status is `klp status --json` and `klp check --json`.
type Status struct {
	SchemaVersion      int         `json:"schema_version"`
	Status             string      `json:"status"`
	Interface          string      `json:"interface"`
	LivepatchSupported bool        `json:"livepatch_supported"`
	Transition         *Transition `json:"transition"`
}

// NewStatus builds the status document.
func NewStatus(st admin.Status) Status {
	return Status{
		SchemaVersion:      Version,
		Status:             st.Word(),
		Interface:          string(st.Interface),
		LivepatchSupported: st.Interface != livepatch.InterfaceNone,
		Transition:         transition(st.Transition),
	}
}

// Error is the document of a command that failed before it could print its
// own (a bad --sysfs, a lock held by another klp, a refusal to act on a
// copied tree): what --json promises, also when it fails.
type Error struct {
	SchemaVersion int    `json:"schema_version"`
	Error         string `json:"error"`
	ExitCode      int    `json:"exit_code"`
}

// NewError builds the error document.
func NewError(msg string, code int) Error {
	return Error{SchemaVersion: Version, Error: msg, ExitCode: code}
}
