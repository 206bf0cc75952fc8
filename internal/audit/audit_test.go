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

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/google/go-cmp/cmp"
)

var (
	root  = Identity{UID: 0, User: "root"}
	sudo  = Identity{UID: 0, User: "root", SudoUser: "alice"}
	good  = Record{Action: "load", Patch: "fix", File: "/var/lib/klp/6.1/fix.ko", Release: "6.1", Result: "patched", Elapsed: 1234 * time.Millisecond}
	bad   = Record{Action: "unload", Patch: "fix", Elapsed: time.Second, Err: errors.New("module still in use")}
	noRes = Record{Action: "load", File: "/tmp/x.ko", Elapsed: 12 * time.Millisecond, Err: errors.New("invalid argument")}
)

func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		r    Record
		want string
	}{
		{good, "patched"},
		{bad, "failed"},
		{Record{Result: "rolled back", Err: errors.New("stalled")}, "rolled back"},
		{Record{}, ""},
	} {
		if got := c.r.Outcome(); got != c.want {
			t.Errorf("Outcome(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestIdentityString(t *testing.T) {
	if got := root.String(); got != "root(0)" {
		t.Errorf("got %q", got)
	}
	if got := sudo.String(); got != "root(0) sudo_user=alice" {
		t.Errorf("got %q", got)
	}
}

func TestCurrentIdentity(t *testing.T) {
	t.Setenv("SUDO_USER", "bob")
	id := CurrentIdentity()
	if id.SudoUser != "bob" || id.User == "" {
		t.Errorf("CurrentIdentity() = %+v", id)
	}
}

func TestMessage(t *testing.T) {
	for _, c := range []struct {
		r    Record
		who  Identity
		want string
	}{
		{good, root, "load fix (/var/lib/klp/6.1/fix.ko) for 6.1: patched in 1.234s by root(0)"},
		{bad, sudo, "unload fix: failed in 1s by root(0) sudo_user=alice: module still in use"},
		{noRes, root, "load /tmp/x.ko: failed in 12ms by root(0): invalid argument"},
	} {
		if got := Message(c.r, c.who); got != c.want {
			t.Errorf("Message() = %q\nwant        %q", got, c.want)
		}
	}
}

func TestJournal(t *testing.T) {
	type entry struct {
		Msg  string
		Prio journal.Priority
		Vars map[string]string
	}
	var got []entry
	j := NewJournal(sudo, func(msg string, prio journal.Priority, vars map[string]string) error {
		got = append(got, entry{msg, prio, vars})
		return errors.New("journal full") // must not matter
	})
	j.Record(good)
	j.Record(bad)
	want := []entry{
		{Message(good, sudo), journal.PriNotice, map[string]string{
			"SYSLOG_IDENTIFIER": "klp", "KLP_ACTION": "load", "KLP_PATCH": "fix", "KLP_FILE": "/var/lib/klp/6.1/fix.ko",
			"KLP_RELEASE": "6.1", "KLP_RESULT": "patched", "KLP_DURATION_MS": "1234",
			"KLP_USER": "root", "KLP_UID": "0", "KLP_SUDO_USER": "alice",
		}},
		{Message(bad, sudo), journal.PriWarning, map[string]string{
			"SYSLOG_IDENTIFIER": "klp", "KLP_ACTION": "unload", "KLP_PATCH": "fix", "KLP_RESULT": "failed",
			"KLP_ERROR": "module still in use", "KLP_DURATION_MS": "1000",
			"KLP_USER": "root", "KLP_UID": "0", "KLP_SUDO_USER": "alice",
		}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal entries (-want +got):\n%s", d)
	}
	// PriNotice and PriWarning are syslog's 5 and 4.
	if PriorityOK != 5 || PriorityFailed != 4 {
		t.Errorf("priorities %d, %d", PriorityOK, PriorityFailed)
	}
}

func TestLine(t *testing.T) {
	for _, c := range []struct {
		r    Record
		want string
	}{
		{good, `user=root(0) action=load target=/var/lib/klp/6.1/fix.ko result="patched" duration=1.234s patch=fix release=6.1`},
		{bad, `user=root(0) action=unload target=fix result="failed" duration=1s error="module still in use"`},
		{noRes, `user=root(0) action=load target=/tmp/x.ko result="failed" duration=12ms error="invalid argument"`},
	} {
		if got := Line(c.r, root); got != c.want {
			t.Errorf("Line() = %q\nwant     %q", got, c.want)
		}
	}
}

func TestSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram socket: %v", err)
	}
	defer conn.Close()
	a := DialSyslog("unixgram", sock, sudo)
	if a == nil {
		t.Fatal("DialSyslog returned nil with a listening socket")
	}
	a.Record(good)
	a.Record(bad)

	var got []string
	buf := make([]byte, 4096)
	for range 2 {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	for i, r := range []Record{good, bad} {
		if want := Line(r, sudo); !strings.Contains(got[i], " klp[") || !strings.HasSuffix(strings.TrimSpace(got[i]), want) {
			t.Errorf("record %d = %q, want the klp tag and %q", i, got[i], want)
		}
	}
	// <13> is user.notice, <12> user.warning: failures stand out.
	if !strings.HasPrefix(got[0], "<13>") || !strings.HasPrefix(got[1], "<12>") {
		t.Errorf("priorities: %q, %q", got[0][:4], got[1][:4])
	}
}

func TestSyslogWithoutDaemon(t *testing.T) {
	if a := DialSyslog("unixgram", filepath.Join(t.TempDir(), "none"), root); a != nil {
		t.Errorf("DialSyslog to a missing socket = %v, want nil", a)
	}
	var s *Syslog
	s.Record(good) // a nil auditor drops records
}

func TestDefault(t *testing.T) {
	switch a := Default().(type) {
	case *Journal:
		if !JournalEnabled() {
			t.Errorf("Default() = %T without journald", a)
		}
	case *Syslog:
		if JournalEnabled() {
			t.Errorf("Default() = %T with journald listening", a)
		}
	case Discard:
		if JournalEnabled() {
			t.Errorf("Default() = %T with journald listening", a)
		}
	default:
		t.Errorf("Default() = %T", a)
	}
}

// TestSyslogGone: an audit log that goes away after klp connected, a nil
// auditor and Discard lose the record and never the change: Record
// returns without panicking.
func TestSyslogGone(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	recordAll := func(a Auditor) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("Record panicked: %v", r)
			}
		}()
		for _, r := range []Record{good, bad, noRes} {
			a.Record(r)
		}
		return nil
	}
	var nilSyslog *Syslog
	for name, a := range map[string]Auditor{"nil": nilSyslog, "empty": &Syslog{}, "discard": Discard{}} {
		if err := recordAll(a); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram socket: %v", err)
	}
	a := DialSyslog("unixgram", sock, root)
	if a == nil {
		t.Fatal("DialSyslog returned nil with a listening socket")
	}
	conn.Close()
	os.Remove(sock)
	if err := recordAll(a); err != nil {
		t.Errorf("after the daemon went away: %v", err)
	}
}

// TestCurrentIdentityNames names the user by name and id, and no sudo user
// without sudo.
func TestCurrentIdentityNames(t *testing.T) {
	t.Setenv("SUDO_USER", "")
	id := CurrentIdentity()
	if id.UID != os.Getuid() || id.SudoUser != "" {
		t.Errorf("CurrentIdentity() = %+v, want uid %d and no sudo user", id, os.Getuid())
	}
	want := strconv.Itoa(os.Getuid())
	if u, err := user.LookupId(want); err == nil {
		want = u.Username
	}
	if id.User != want {
		t.Errorf("CurrentIdentity().User = %q, want %q", id.User, want)
	}
}
