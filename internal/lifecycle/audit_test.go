package lifecycle

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyslogAuditor(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unix datagram socket: %v", err)
	}
	defer conn.Close()
	a := NewSyslogAuditorAt("unixgram", sock)
	a.Record("load", "/var/lib/klp/x.ko", "patched", 1234*time.Millisecond, nil)
	a.Record("unload", "fix", "", time.Second, errors.New("module still in use"))

	var got []string
	buf := make([]byte, 4096)
	for i := 0; i < 2; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	for i, want := range []string{
		`action=load target=/var/lib/klp/x.ko result="patched" duration=1.234s`,
		`action=unload target=fix result="" duration=1s error="module still in use"`,
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

func TestSyslogAuditorWithoutSyslog(t *testing.T) {
	a := NewSyslogAuditorAt("unixgram", filepath.Join(t.TempDir(), "none"))
	a.Record("load", "x", "patched", time.Second, nil) // must not panic or fail
}
