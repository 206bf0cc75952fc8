package lifecycle

import (
	"fmt"
	"log/syslog"
	"os"
	"os/user"
	"strconv"
	"time"
)

// Auditor records every mutating action: who, what, the result and how
// long it took, so that the journal answers "who unloaded that patch?".
type Auditor interface {
	Record(action, target, result string, elapsed time.Duration, err error)
}

// SyslogAuditor writes audit records to syslog (the journal on systemd
// machines) with the tag "klp". When syslog cannot be reached (a container
// without /dev/log) records are dropped: auditing must not make a load
// fail.
type SyslogAuditor struct {
	w    *syslog.Writer
	user string
}

// NewSyslogAuditor connects to the local syslog.
func NewSyslogAuditor() *SyslogAuditor {
	return NewSyslogAuditorAt("", "")
}

// NewSyslogAuditorAt connects to the syslog daemon at a network address
// ("unixgram", "/dev/log"); empty strings mean the local default.
func NewSyslogAuditorAt(network, addr string) *SyslogAuditor {
	a := &SyslogAuditor{user: whoami()}
	if w, err := syslog.Dial(network, addr, syslog.LOG_NOTICE|syslog.LOG_USER, "klp"); err == nil {
		a.w = w
	}
	return a
}

// Record implements [Auditor].
func (a *SyslogAuditor) Record(action, target, result string, elapsed time.Duration, err error) {
	if a == nil || a.w == nil {
		return
	}
	msg := fmt.Sprintf("user=%s action=%s target=%s result=%q duration=%s", a.user, action, target, result, elapsed.Round(time.Millisecond))
	if err != nil {
		msg += fmt.Sprintf(" error=%q", err.Error())
		_ = a.w.Warning(msg)
		return
	}
	_ = a.w.Notice(msg)
}

// whoami names the user, including the one behind sudo.
func whoami() string {
	uid := os.Getuid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username + "(" + name + ")"
	}
	if su := os.Getenv("SUDO_USER"); su != "" {
		name += " sudo_user=" + su
	}
	return name
}
