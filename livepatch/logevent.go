package livepatch

import (
	"strings"

	"github.com/klp-project/klp/kernel"
)

// LogEventKind is what a livepatch record of the kernel log announces.
type LogEventKind int

const (
	// EventOther is any other livepatch record ("enabling patch 'p'",
	// "signaling remaining tasks", a forced transition...).
	EventOther LogEventKind = iota
	// EventStart is "livepatch: '<patch>': starting patching transition"
	// (or unpatching): a transition began, or a reverse restarted it.
	EventStart
	// EventComplete is "livepatch: '<patch>': patching complete" (or
	// unpatching), which klp_complete_transition logs at the end of every
	// transition, including a load that failed (its patch then ends
	// unpatched).
	EventComplete
)

// LogEvent is a livepatch record of the kernel log.
type LogEvent struct {
	Kind LogEventKind
	// Patch is the patch (module) named by a start or a completion.
	Patch string
	// Target is [StatePatched] or [StateUnpatched] for a start or a
	// completion.
	Target PatchState
}

// logPrefix is livepatch's pr_fmt.
const logPrefix = "livepatch: "

// ParseLogEvent reads one kernel log message (a record's text, as
// [kernel.ParseKmsgRecord] returns it): false when it is not livepatch's.
//
// The kernel logs the completion just before it clears the transition
// (klp_complete_transition prints, then resets klp_transition_patch), so a
// completion says that the patch's transition attribute is about to read 0,
// not that it does: it is a reason to look, never the answer.
func ParseLogEvent(msg string) (LogEvent, bool) {
	rest, ok := strings.CutPrefix(msg, logPrefix)
	if !ok {
		return LogEvent{}, false
	}
	ev := LogEvent{Kind: EventOther}
	// "'<patch>': <what>": a module name never holds a quote.
	if !strings.HasPrefix(rest, "'") {
		return ev, true
	}
	name, what, ok := strings.Cut(rest[1:], "': ")
	if !ok || kernel.ValidateModuleName(name) != nil {
		return ev, true
	}
	switch what {
	case "patching complete":
		ev.Kind, ev.Target = EventComplete, StatePatched
	case "unpatching complete":
		ev.Kind, ev.Target = EventComplete, StateUnpatched
	case "starting patching transition":
		ev.Kind, ev.Target = EventStart, StatePatched
	case "starting unpatching transition":
		ev.Kind, ev.Target = EventStart, StateUnpatched
	default:
		return ev, true
	}
	ev.Patch = name
	return ev, true
}
