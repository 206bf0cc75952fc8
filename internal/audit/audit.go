// Package audit records every action of klp that changes the kernel's live
// patches or the patches installed for boot: who did it, what, to which
// patch, with which result and how long it took, so that the system log
// answers "who unloaded that patch, and when?".
//
// On systemd machines the records go to the journal through its native
// protocol, one structured entry per record, with fields that journalctl
// can select on:
//
//	journalctl SYSLOG_IDENTIFIER=klp
//	journalctl KLP_ACTION=load KLP_PATCH=livepatch_fix
//	journalctl KLP_RESULT=failed
//
// Elsewhere they go to the syslog daemon on /dev/log as one line of
// key=value text. Auditing never makes an action fail: when neither is
// reachable, records are dropped.
package audit

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"
)

// Record is one audited action.
type Record struct {
	// Action is the verb: load, unload, disable, enable, force, signal,
	// install, uninstall.
	Action string
	// Patch is the patch (module) name, when known.
	Patch string
	// File is the module file acted on, when there is one.
	File string
	// Release is the kernel release the action concerns (install and
	// uninstall may name another kernel than the running one).
	Release string
	// Result is what happened: "patched", "removed", "installed",
	// "skipped"... An empty result with an error reads as "failed".
	Result string
	// Elapsed is how long the action took.
	Elapsed time.Duration
	// Err is why the action failed, nil on success.
	Err error
}

// Outcome is the record's result as it is logged: "failed" when an error
// left it empty.
func (r Record) Outcome() string {
	if r.Result == "" && r.Err != nil {
		return "failed"
	}
	return r.Result
}

// Auditor receives the records. Implementations must not fail the action:
// errors are theirs to swallow.
type Auditor interface {
	Record(Record)
}

// Identity is who runs klp.
type Identity struct {
	UID  int
	User string // login name, or the UID when it has none
	// SudoUser is the user behind sudo ($SUDO_USER), "" without sudo.
	SudoUser string
}

// String is "name(uid)", with " sudo_user=NAME" when run through sudo.
func (id Identity) String() string {
	s := id.User + "(" + strconv.Itoa(id.UID) + ")"
	if id.SudoUser != "" {
		s += " sudo_user=" + id.SudoUser
	}
	return s
}

// CurrentIdentity names the user of this process.
func CurrentIdentity() Identity {
	uid := os.Getuid()
	id := Identity{UID: uid, User: strconv.Itoa(uid), SudoUser: os.Getenv("SUDO_USER")}
	if u, err := user.LookupId(id.User); err == nil {
		id.User = u.Username
	}
	return id
}

// Message is the human-readable text of a record, the journal's MESSAGE:
//
//	load klp_fix (/var/lib/klp/6.1.0-56-cloud-amd64/klp_fix.ko) for 6.1.0-56-cloud-amd64: patched in 1.234s by root(0)
//	load klp_bad: failed in 12ms by root(0): load klp_bad.ko: invalid argument
func Message(r Record, who Identity) string {
	what := r.Action
	if r.Patch != "" {
		what += " " + r.Patch
	}
	switch {
	case r.File != "" && r.Patch != "":
		what += " (" + r.File + ")"
	case r.File != "":
		what += " " + r.File
	}
	if r.Release != "" {
		what += " for " + r.Release
	}
	msg := fmt.Sprintf("%s: %s in %s by %s", what, r.Outcome(), r.Elapsed.Round(time.Millisecond), who)
	if r.Err != nil {
		msg += ": " + r.Err.Error()
	}
	return msg
}

// Default returns the auditor of this machine: the journal when journald
// listens, else syslog on /dev/log, else one that drops every record.
func Default() Auditor {
	who := CurrentIdentity()
	if JournalEnabled() {
		return NewJournal(who, nil)
	}
	if s := DialSyslog("", "", who); s != nil {
		return s
	}
	return Discard{}
}

// Discard drops every record.
type Discard struct{}

// Record implements [Auditor].
func (Discard) Record(Record) {}
