package kmod

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseKmsg(t *testing.T) {
	const records = "4,1021,5100702,-;test_klp_livepatch: loading out-of-tree module taints kernel.\n" +
		"5,1022,5100721,-;livepatch: enabling patch 'test_klp_livepatch'\n" +
		"6,1023,5200000,-;usb 1-1: new device\n" +
		" SUBSYSTEM=usb\n" +
		" DEVICE=c189:1\n" +
		"14,1024,5300000,-,caller=T1234;from user space\\x0aline two \\x5c done\n" +
		"\n" +
		"3,1025,5400000,c;livepatch: symbol 'foo' not found in symbol table\n"
	got, err := ParseKmsg(strings.NewReader(records))
	if err != nil {
		t.Fatal(err)
	}
	want := []KmsgRecord{
		{Level: 4, Seq: 1021, Time: 5100702 * time.Microsecond, Flags: "-", Message: "test_klp_livepatch: loading out-of-tree module taints kernel."},
		{Level: 5, Seq: 1022, Time: 5100721 * time.Microsecond, Flags: "-", Message: "livepatch: enabling patch 'test_klp_livepatch'"},
		{Level: 6, Seq: 1023, Time: 5200 * time.Millisecond, Flags: "-", Message: "usb 1-1: new device"},
		{Facility: 1, Level: 6, Seq: 1024, Time: 5300 * time.Millisecond, Flags: "-", Caller: "T1234", Message: "from user space\nline two \\ done"},
		{Level: 3, Seq: 1025, Time: 5400 * time.Millisecond, Flags: "c", Message: "livepatch: symbol 'foo' not found in symbol table"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}
	if m := Messages(got); len(m) != 5 || m[1] != "livepatch: enabling patch 'test_klp_livepatch'" {
		t.Errorf("Messages = %q", m)
	}
}

func TestParseKmsgMalformed(t *testing.T) {
	recs, err := ParseKmsg(strings.NewReader("garbage\n6,1,2,-;ok\n6,x,2,-;bad seq\n1,2;short\n"))
	if !errors.Is(err, ErrParse) {
		t.Errorf("err = %v, want ErrParse", err)
	}
	if len(recs) != 1 || recs[0].Message != "ok" {
		t.Errorf("records %v", recs)
	}
	// A bad escape is kept literally.
	r, err := ParseKmsgRecord([]byte("6,1,2,-;a\\xZZb\\x4"))
	if err != nil || r.Message != "a\\xZZb\\x4" {
		t.Errorf("%q %v", r.Message, err)
	}
}

// DevKmsg on a regular file: only records appended after opening are read.
func TestDevKmsgFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, []byte("6,1,1,-;old record\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := DevKmsg{Path: path}.OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("3,2,2,-;new record\n")
	f.Close()
	recs, err := readKmsg(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := Messages(recs); len(got) != 1 || got[0] != "new record" {
		t.Errorf("records %q", got)
	}
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

// OpenLog reads the log from its oldest record: klp snapshot's copy.
func TestDevKmsgOpenLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, []byte("6,1,1,-;old record\n3,2,2,-;new record\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := DevKmsg{Path: path}.OpenLog()
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readKmsg(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := Messages(recs); len(got) != 2 || got[0] != "old record" || got[1] != "new record" {
		t.Errorf("records %q", got)
	}
	if _, err := (DevKmsg{Path: filepath.Join(t.TempDir(), "missing")}).OpenLog(); !errors.Is(err, ErrKmsgUnavailable) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing log: %v", err)
	}
}

func TestDevKmsgUnavailable(t *testing.T) {
	_, err := DevKmsg{Path: filepath.Join(t.TempDir(), "missing")}.OpenKmsg()
	if !errors.Is(err, ErrKmsgUnavailable) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

// The real /dev/kmsg: records written after opening are read back, and a
// read with nothing new returns at once (O_NONBLOCK, not parked in the
// netpoller). Needs root (writing /dev/kmsg needs CAP_SYSLOG... or root).
func TestDevKmsgReal(t *testing.T) {
	rc, err := DevKmsg{Path: "/dev/kmsg"}.OpenKmsg()
	if err != nil {
		t.Skipf("no readable /dev/kmsg: %v", err)
	}
	defer rc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc) // drain whatever arrived since open
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading /dev/kmsg blocked")
	}
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
	canary := "klp kmod test canary " + time.Now().Format(time.RFC3339Nano)
	// The newline matters: the ring buffer finalises a record (makes it
	// readable) only when it ends in a newline or the next record arrives.
	_, err = w.WriteString("<5>" + canary + "\n")
	w.Close()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("cannot write /dev/kmsg: %v", err)
	}
	recs, err := readKmsg(rc)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if strings.Contains(r.Message, canary) {
			found = true
			if r.Facility != 1 || r.Level != 5 {
				t.Errorf("user-space record: facility %d level %d", r.Facility, r.Level)
			}
		}
	}
	if !found {
		t.Errorf("canary not read back; got %q", Messages(recs))
	}
}
