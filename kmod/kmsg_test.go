package kmod

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
	// Readable by this process (checked without the code under test): a
	// failure of OpenKmsg is then a failure, not a skip.
	if f, err := os.Open("/dev/kmsg"); err != nil {
		t.Skipf("no readable /dev/kmsg: %v", err)
	} else {
		f.Close()
	}
	rc, err := DevKmsg{Path: "/dev/kmsg"}.OpenKmsg()
	if err != nil {
		t.Fatalf("OpenKmsg of the real /dev/kmsg: %v", err)
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
