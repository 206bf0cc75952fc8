package audit

import (
	"errors"
	"net"
	"path/filepath"
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

func TestSyslogWithoutSyslog(t *testing.T) {
	a := NewSyslogAt("unixgram", filepath.Join(t.TempDir(), "none"))
	a.Record(Record{Action: "load", Patch: "x", Result: "patched"}) // must not panic or fail
	var d Discard
	d.Record(Record{})
}
