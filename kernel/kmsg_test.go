package kernel

import (
	"bufio"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

// The error names the first bad line by its number among all lines, and a
// line too long to be a record is an error of its own.
func TestParseKmsgErrors(t *testing.T) {
	_, err := ParseKmsg(strings.NewReader("6,1,2,-;ok\n SUBSYSTEM=x\n6,x,2,-;bad\ngarbage\n"))
	if !errors.Is(err, ErrParse) || !strings.HasPrefix(err.Error(), "kmsg line 3: ") {
		t.Errorf("err = %v, want ErrParse at kmsg line 3", err)
	}
	recs, err := ParseKmsg(strings.NewReader("6,1,2,-;ok\n6,2,3,-;" + strings.Repeat("x", 2<<20) + "\n"))
	if !errors.Is(err, bufio.ErrTooLong) || len(recs) != 1 {
		t.Errorf("a 2 MiB line: %d records, %v; want 1, bufio.ErrTooLong", len(recs), err)
	}
	// The first error wins over the reader's.
	_, err = ParseKmsg(strings.NewReader("garbage\n6,2,3,-;" + strings.Repeat("x", 2<<20) + "\n"))
	if !errors.Is(err, ErrParse) || errors.Is(err, bufio.ErrTooLong) {
		t.Errorf("a bad line, then a 2 MiB line: %v; want the bad line's ErrParse", err)
	}
	// What follows a newline is the dictionary, even at the start; the
	// prefix ends at the first ';', even at the start.
	for in, want := range map[string]string{"\n6,1,2,-;x": "no ';'", ";6,1,2,-": "want prio,seq,usec,flags"} {
		if _, err := ParseKmsgRecord([]byte(in)); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKmsgRecord(%q) = %v, want ErrParse saying %q", in, err, want)
		}
	}
}
