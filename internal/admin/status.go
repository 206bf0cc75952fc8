package admin

import "github.com/klp-project/klp/livepatch"

// Status is what status and check report.
type Status struct {
	Interface  livepatch.Interface
	InProgress bool
	// Transition is the transition in progress; on kGraft its Patch is ""
	// (kGraft does not name it).
	Transition *livepatch.Transition
	// Path is /sys/kernel/livepatch: the directory whose absence means "not
	// supported".
	Path string
}

// Word is what klp status prints: "ready" or "in_progress".
func (st Status) Word() string {
	if st.InProgress {
		return "in_progress"
	}
	return "ready"
}

// Status reads whether a transition is in progress.
func (s *System) Status() (Status, error) { return s.backend.status() }
