package report

import (
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/preflight"
)

// Outcome is the document of every life-cycle command: load, unload,
// disable, enable, wait, signal, force, and their --all forms, whose
// per-patch outcomes are in Outcomes, each of the same shape.
type Outcome struct {
	SchemaVersion int `json:"schema_version"`
	SubOutcome
}

// SubOutcome is an outcome without the schema version: the document's
// body, and each per-patch outcome of --all.
type SubOutcome struct {
	Action    string   `json:"action"`
	Patch     *string  `json:"patch"`
	File      *string  `json:"file"`
	Result    string   `json:"result"`
	ElapsedMS int64    `json:"elapsed_ms"`
	Error     *string  `json:"error"`
	ExitCode  int      `json:"exit_code"`
	Stall     *Stall   `json:"stall"`
	KernelLog []string `json:"kernel_log"`
	Notes     []string `json:"notes"`
	Preflight []Check  `json:"preflight"`
	// Release is the kernel release of load --all; null otherwise.
	Release  *string      `json:"release"`
	Outcomes []SubOutcome `json:"outcomes"`
}

func subOutcome(o *admin.Outcome) SubOutcome {
	s := SubOutcome{
		Action: o.Action, Patch: optString(o.Patch), File: optString(o.File), Result: o.Result,
		ElapsedMS: o.Elapsed.Milliseconds(), Error: errString(o.Err), ExitCode: admin.ExitCode(o.Err),
		Stall: NewStall(o.Stall), KernelLog: nonNil(o.KernelLog), Notes: nonNil(o.Notes),
		Release: optString(o.Release), Outcomes: []SubOutcome{},
	}
	// The checks are shown when they are why nothing was loaded.
	if o.Result == admin.ResultRefused && len(o.Preflight) > 0 {
		s.Preflight = checks(o.Preflight)
	}
	for _, sub := range o.Outcomes {
		s.Outcomes = append(s.Outcomes, subOutcome(sub))
	}
	return s
}

// NewOutcome builds the outcome document.
func NewOutcome(o *admin.Outcome) Outcome {
	return Outcome{SchemaVersion: OutcomeVersion, SubOutcome: subOutcome(o)}
}

// Check is one preflight check.
type Check struct {
	ID      string           `json:"id"`
	Title   string           `json:"title"`
	Status  preflight.Status `json:"status"`
	Reason  string           `json:"reason"`
	Fix     *string          `json:"fix"`
	Details []string         `json:"details"`
}

func checks(cs []preflight.Check) []Check {
	out := make([]Check, 0, len(cs))
	for _, c := range cs {
		out = append(out, Check{ID: c.ID, Title: c.Title, Status: c.Status, Reason: c.Reason, Fix: optString(c.Fix), Details: nonNil(c.Details)})
	}
	return out
}
