package audit

import (
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Journal fields of a record, besides MESSAGE, PRIORITY and
// SYSLOG_IDENTIFIER. Empty values are left out.
const (
	FieldAction   = "KLP_ACTION"
	FieldPatch    = "KLP_PATCH"
	FieldFile     = "KLP_FILE"
	FieldRelease  = "KLP_RELEASE"
	FieldResult   = "KLP_RESULT"
	FieldError    = "KLP_ERROR"
	FieldDuration = "KLP_DURATION_MS"
	FieldUser     = "KLP_USER"
	FieldUID      = "KLP_UID"
	FieldSudoUser = "KLP_SUDO_USER"
)

// Identifier is the SYSLOG_IDENTIFIER (and syslog tag) of the records.
const Identifier = "klp"

// Priorities: notice for what succeeded, warning for what failed, as
// syslog(3) numbers them.
const (
	PriorityOK     = journal.PriNotice
	PriorityFailed = journal.PriWarning
)

// SendFunc sends one journal entry; [journal.Send] is the real one.
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// Journal writes records to the systemd journal with the native protocol,
// one entry per record, with the KLP_* fields.
type Journal struct {
	who  Identity
	send SendFunc
}

// JournalEnabled reports whether journald listens on its native socket.
func JournalEnabled() bool { return journal.Enabled() }

// NewJournal returns an auditor that records as who. send nil means
// [journal.Send]; tests pass their own.
func NewJournal(who Identity, send SendFunc) *Journal {
	if send == nil {
		send = journal.Send
	}
	return &Journal{who: who, send: send}
}

// Record implements [Auditor].
func (j *Journal) Record(r Record) {
	prio := PriorityOK
	if r.Err != nil {
		prio = PriorityFailed
	}
	// A full journal or a stopped journald must not fail the action.
	_ = j.send(Message(r, j.who), prio, Fields(r, j.who))
}

// Fields are the journal fields of a record, besides MESSAGE and
// PRIORITY (which journal.Send adds).
func Fields(r Record, who Identity) map[string]string {
	f := map[string]string{
		"SYSLOG_IDENTIFIER": Identifier,
		FieldAction:         r.Action,
		FieldResult:         r.Outcome(),
		FieldDuration:       strconv.FormatInt(r.Elapsed.Round(time.Millisecond).Milliseconds(), 10),
		FieldUser:           who.User,
		FieldUID:            strconv.Itoa(who.UID),
	}
	for k, v := range map[string]string{
		FieldPatch: r.Patch, FieldFile: r.File, FieldRelease: r.Release, FieldSudoUser: who.SudoUser,
	} {
		if v != "" {
			f[k] = v
		}
	}
	if r.Err != nil {
		f[FieldError] = r.Err.Error()
	}
	return f
}
