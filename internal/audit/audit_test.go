package audit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram socket: %v", err)
	}
	defer conn.Close()
	a := NewSyslogAt("unixgram", sock)
	a.Record(Record{Action: "load", Patch: "fix", File: "/var/lib/klp/x.ko", Result: "patched", Elapsed: 1234 * time.Millisecond})
	a.Record(Record{Action: "unload", Patch: "fix", Result: "failed", Elapsed: time.Second, Err: errors.New("module still in use")})
	a.Record(Record{Action: "install", Patch: "fix", Release: "6.1.0", Result: "installed"})

	var got []string
	buf := make([]byte, 4096)
	for range 3 {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	for i, want := range []string{
		`action=load patch=fix file=/var/lib/klp/x.ko result="patched" duration=1.234s`,
		`action=unload patch=fix result="failed" duration=1s error="module still in use"`,
		`action=install patch=fix release=6.1.0 result="installed" duration=0s`,
	} {
		if !strings.Contains(got[i], "klp") || !strings.Contains(got[i], "user=") || !strings.Contains(got[i], want) {
			t.Errorf("record %d = %q, want it to contain %q", i, got[i], want)
		}
	}
	// <13> is user.notice, <12> user.warning: failures stand out.
	if !strings.HasPrefix(got[0], "<13>") || !strings.HasPrefix(got[1], "<12>") {
		t.Errorf("priorities: %q, %q", got[0][:4], got[1][:4])
	}
}

// TestSyslogWithoutSyslog: an audit log that cannot be reached, or that
// goes away, loses the record and never the change: Record returns
// without panicking.
func TestSyslogWithoutSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	records := []Record{{Action: "load", Patch: "x", Result: "patched"}, {Action: "unload", Patch: "x", Result: "failed", Err: errors.New("busy")}}
	recordAll := func(a Auditor) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("Record panicked: %v", r)
			}
		}()
		for _, r := range records {
			a.Record(r)
		}
		return nil
	}
	var nilSyslog *Syslog
	for name, a := range map[string]Auditor{"no syslog": NewSyslogAt("unixgram", sock), "nil": nilSyslog, "discard": Discard{}} {
		if err := recordAll(a); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// A daemon that was there, then went away.
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram socket: %v", err)
	}
	a := NewSyslogAt("unixgram", sock)
	conn.Close()
	os.Remove(sock)
	if err := recordAll(a); err != nil {
		t.Errorf("after the daemon went away: %v", err)
	}
}

// TestWho names the user by name and id, and the one behind sudo.
func TestWho(t *testing.T) {
	uid := strconv.Itoa(os.Getuid())
	t.Setenv("SUDO_USER", "")
	if w := Who(); !strings.Contains(w, uid) || strings.Contains(w, "sudo_user") {
		t.Errorf("Who() = %q, want uid %s and no sudo_user", w, uid)
	}
	if u, err := user.LookupId(uid); err == nil {
		if w, want := Who(), u.Username+"("+uid+")"; w != want {
			t.Errorf("Who() = %q, want %q", w, want)
		}
	}
	t.Setenv("SUDO_USER", "alice")
	if w := Who(); !strings.HasSuffix(w, " sudo_user=alice") || !strings.Contains(w, uid) {
		t.Errorf("Who() under sudo = %q, want the uid and sudo_user=alice", w)
	}
}
