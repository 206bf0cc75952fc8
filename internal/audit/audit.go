// Package audit records every change klp makes to the kernel: who did what
// to which patch, and how it ended, so that the journal answers "who
// unloaded that patch?". Only commands that change something open an
// auditor.
package audit

import (
	"fmt"
	"log/syslog"
	"os"
	"os/user"
	"strconv"
	"time"
)

// Record is one audited action.
type Record struct {
	// Action is the command: load, unload, disable, enable, force,
	// signal, poke, install, uninstall, or wait (a rollback of a stalled
	// transition by wait --on-stall=rollback).
	Action string
	// Patch is the patch (module) name; "" when it is not known (a load
	// refused before the module could be read).
	Patch string
	// File is the module file of a load or install.
	File string
	// Release is the kernel release of an install or uninstall.
	Release string
	// Result is how the action ended ("patched", "removed", "rolled
	// back", "failed", ...).
	Result  string
	Elapsed time.Duration
	// Err is the error the action ended with, nil on success.
	Err error
}

// Auditor records actions. Implementations never fail the action: an audit
// log that cannot be reached loses the record, not the load.
type Auditor interface {
	Record(Record)
}

// Discard drops every record.
type Discard struct{}

// Record implements [Auditor].
func (Discard) Record(Record) {}

// Syslog writes records to syslog (the journal on systemd machines) with
// the tag "klp", as text: user=... action=... patch=... result="..."
// duration=... [error="..."]. When syslog cannot be reached (a container
// without /dev/log) records are dropped.
type Syslog struct {
	w    *syslog.Writer
	user string
}

// NewSyslog connects to the local syslog.
func NewSyslog() *Syslog { return NewSyslogAt("", "") }

// NewSyslogAt connects to the syslog daemon at a network address
// ("unixgram", "/dev/log"); empty strings mean the local default.
func NewSyslogAt(network, addr string) *Syslog {
	a := &Syslog{user: Who()}
	if w, err := syslog.Dial(network, addr, syslog.LOG_NOTICE|syslog.LOG_USER, "klp"); err == nil {
		a.w = w
	}
	return a
}

// Record implements [Auditor].
func (a *Syslog) Record(r Record) {
	if a == nil || a.w == nil {
		return
	}
	msg := fmt.Sprintf("user=%s action=%s patch=%s", a.user, r.Action, orDash(r.Patch))
	if r.File != "" {
		msg += " file=" + r.File
	}
	if r.Release != "" {
		msg += " release=" + r.Release
	}
	msg += fmt.Sprintf(" result=%q duration=%s", r.Result, r.Elapsed.Round(time.Millisecond))
	if r.Err != nil {
		msg += fmt.Sprintf(" error=%q", r.Err.Error())
		_ = a.w.Warning(msg)
		return
	}
	_ = a.w.Notice(msg)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Who names the user, including the one behind sudo: "root(0)
// sudo_user=alice".
func Who() string {
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
