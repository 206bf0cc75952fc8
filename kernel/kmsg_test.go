package kernel

import (
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
