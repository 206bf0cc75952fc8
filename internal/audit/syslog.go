package audit

import (
	"fmt"
	"log/syslog"
	"time"
)

// Syslog writes records to a syslog daemon as one line of text each:
//
//	user=root(0) action=load target=/var/lib/klp/…/fix.ko result="patched" duration=1.234s patch=fix release=6.1.0-56-cloud-amd64
//
// (target is the file acted on, or the patch when there is none), at
// user.notice, or user.warning with error="..." for a failure.
type Syslog struct {
	w   *syslog.Writer
	who Identity
}

// DialSyslog connects to the syslog daemon at a network address
// ("unixgram", "/dev/log"); empty strings mean the local default. It
// returns nil when no daemon answers.
func DialSyslog(network, addr string, who Identity) *Syslog {
	w, err := syslog.Dial(network, addr, syslog.LOG_NOTICE|syslog.LOG_USER, Identifier)
	if err != nil {
		return nil
	}
	return &Syslog{w: w, who: who}
}

// Record implements [Auditor].
func (s *Syslog) Record(r Record) {
	if s == nil || s.w == nil {
		return
	}
	msg := Line(r, s.who)
	if r.Err != nil {
		_ = s.w.Warning(msg)
		return
	}
	_ = s.w.Notice(msg)
}

// Line is the syslog text of a record.
func Line(r Record, who Identity) string {
	target := r.File
	if target == "" {
		target = r.Patch
	}
	msg := fmt.Sprintf("user=%s action=%s target=%s result=%q duration=%s", who, r.Action, target, r.Outcome(), r.Elapsed.Round(time.Millisecond))
	if r.Patch != "" && r.Patch != target {
		msg += " patch=" + r.Patch
	}
	if r.Release != "" {
		msg += " release=" + r.Release
	}
	if r.Err != nil {
		msg += fmt.Sprintf(" error=%q", r.Err.Error())
	}
	return msg
}
