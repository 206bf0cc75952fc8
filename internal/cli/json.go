package cli

import (
	"encoding/json"
	"io"
)

// SchemaVersion is the version of every JSON document klp prints. It
// changes only when a field is removed or changes meaning; new fields may
// appear without a change. See docs/json.md.
const SchemaVersion = 1

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// jsonTransition is the transition in progress.
type jsonTransition struct {
	Patch  *string `json:"patch"`  // null on kGraft, which does not name it
	Target string  `json:"target"` // "patched" or "unpatched"
}
