package kallsyms

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// A trimmed /proc/kallsyms as root sees it: vmlinux symbols without a tag,
// then module symbols with "\t[module]". version_proc_show appears twice in
// vmlinux (two static functions of that name) and once in a module, which
// must not count towards vmlinux.
const rootKallsyms = `ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff812a3f10 t cmdline_proc_show
ffffffff812a4000 t version_proc_show
ffffffff812b0000 d version_proc_show
ffffffff812c0000 t meminfo_proc_show
ffffffffc0a01000 t klp_target_value	[klp_target]
ffffffffc0a01010 t version_proc_show	[klp_target]
ffffffffc0a02000 t bpf_prog_6deef7357e7b4530_sd_fw_egress	[bpf]
`

func TestScan(t *testing.T) {
	t.Parallel()
	want := []Key{
		{Vmlinux, "cmdline_proc_show"},
		{Vmlinux, "version_proc_show"},
		{"klp_target", "version_proc_show"},
		{"klp_target", "klp_target_value"},
		{Vmlinux, "klp_target_value"},
		{Vmlinux, "no_such_symbol"},
	}
	res, err := Scan(strings.NewReader(rootKallsyms), want)
	if err != nil {
		t.Fatal(err)
	}
	wantRes := &Result{
		Symbols: map[Key]*Entry{
			{Vmlinux, "cmdline_proc_show"}:      {1, []Occurrence{{0xffffffff812a3f10, 't'}}},
			{Vmlinux, "version_proc_show"}:      {2, []Occurrence{{0xffffffff812a4000, 't'}, {0xffffffff812b0000, 'd'}}},
			{"klp_target", "version_proc_show"}: {1, []Occurrence{{0xffffffffc0a01010, 't'}}},
			{"klp_target", "klp_target_value"}:  {1, []Occurrence{{0xffffffffc0a01000, 't'}}},
			{Vmlinux, "klp_target_value"}:       {},
			{Vmlinux, "no_such_symbol"}:         {},
		},
		Objects: map[string]int{Vmlinux: 6, "klp_target": 2, "bpf": 1},
		Lines:   9,
	}
	if diff := cmp.Diff(wantRes, res); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		obj, name string
		pos       uint64
		want      error
	}{
		{Vmlinux, "cmdline_proc_show", 0, nil},
		{Vmlinux, "cmdline_proc_show", 1, nil},
		{Vmlinux, "cmdline_proc_show", 2, ErrSymposMissing},
		{Vmlinux, "version_proc_show", 0, ErrAmbiguous},
		{Vmlinux, "version_proc_show", 2, nil},
		{Vmlinux, "version_proc_show", 3, ErrSymposMissing},
		{"klp_target", "version_proc_show", 0, nil},
		{Vmlinux, "klp_target_value", 0, ErrNotFound},
		{Vmlinux, "never_asked", 0, ErrNotFound},
	} {
		err := res.Resolve(tc.obj, tc.name, tc.pos)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("Resolve(%s, %s, %d) = %v, want %v", tc.obj, tc.name, tc.pos, err, tc.want)
		}
	}
	if n := res.Count(Vmlinux, "version_proc_show"); n != 2 {
		t.Errorf("Count = %d", n)
	}
}

// Non-root readers (or kptr_restrict=2) see zero addresses; the counts are
// the same and AddressesHidden says why the addresses are missing.
func TestScanHiddenAddresses(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(rootKallsyms), "\n") {
		sb.WriteString("0000000000000000" + line[16:] + "\n")
	}
	res, err := Scan(strings.NewReader(sb.String()), []Key{{Vmlinux, "version_proc_show"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.AddressesHidden || res.Count(Vmlinux, "version_proc_show") != 2 {
		t.Errorf("AddressesHidden %v count %d", res.AddressesHidden, res.Count(Vmlinux, "version_proc_show"))
	}
	res, _ = Scan(strings.NewReader(""), nil)
	if res.AddressesHidden || res.Lines != 0 {
		t.Errorf("empty input: %+v", res)
	}
}

func TestScanMalformed(t *testing.T) {
	t.Parallel()
	input := "ffffffff81000000 T ok_symbol\n" +
		"not-hex T bad_addr\n" +
		"ffffffff81000000 TT bad_type\n" +
		"ffffffff81000000 T\n" +
		"ffffffff81000000 t modsym\t[unclosed\n" +
		"ffffffff81000000 t extra fields [m] x\n" +
		"\n" +
		"ffffffff81000000 t " + strings.Repeat("x", 3*maxLine) + "\n" +
		"ffffffff81000000 t crlf_symbol\r\n" +
		"ffffffff81000000 t empty_module\t[]\n" +
		"ffffffff81000000 t one_letter_module\t[m]\n" +
		"ffffffff81000001 t last_without_newline\t[mod]"
	keys := []Key{{Vmlinux, "ok_symbol"}, {Vmlinux, "crlf_symbol"}, {"m", "one_letter_module"}, {"mod", "last_without_newline"}}
	res, err := Scan(strings.NewReader(input), keys)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 12 || res.Malformed != 8 {
		t.Errorf("Lines %d Malformed %d, want 12 and 8", res.Lines, res.Malformed)
	}
	for _, k := range keys {
		if res.Count(k.Object, k.Name) != 1 {
			t.Errorf("Count(%v) = %d", k, res.Count(k.Object, k.Name))
		}
	}
}

func TestScanReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(rootKallsyms), iotest.ErrReader(boom))
	if _, err := Scan(r, nil); !errors.Is(err, boom) {
		t.Errorf("Scan = %v, want the read error", err)
	}
}

// Occurrences are capped; Count is not.
func TestScanManyOccurrences(t *testing.T) {
	t.Parallel()
	line := "ffffffff81000000 t dup\n"
	res, err := Scan(strings.NewReader(strings.Repeat(line, 3*MaxOccurrences)), []Key{{Vmlinux, "dup"}})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Symbols[Key{Vmlinux, "dup"}]
	if e.Count != 3*MaxOccurrences || len(e.Occurrences) != MaxOccurrences {
		t.Errorf("Count %d, %d occurrences", e.Count, len(e.Occurrences))
	}
}

func FuzzKallsyms(f *testing.F) {
	f.Add([]byte(rootKallsyms), "version_proc_show", "klp_target")
	f.Add([]byte("0000000000000000 T x\t[m]\n"), "x", "m")
	f.Add([]byte("\n\n \t\n"), "", "")
	f.Fuzz(func(t *testing.T, data []byte, name, obj string) {
		keys := []Key{{Vmlinux, name}, {obj, name}}
		res, err := Scan(strings.NewReader(string(data)), keys)
		if err != nil {
			t.Fatal(err) // a strings.Reader never fails
		}
		if res.Malformed > res.Lines {
			t.Fatalf("Malformed %d > Lines %d", res.Malformed, res.Lines)
		}
		total := 0
		for _, n := range res.Objects {
			total += n
		}
		if total != res.Lines-res.Malformed {
			t.Fatalf("objects count %d symbols, %d well-formed lines", total, res.Lines-res.Malformed)
		}
		for _, k := range keys {
			e := res.Symbols[k]
			if e == nil || e.Count < len(e.Occurrences) || len(e.Occurrences) > MaxOccurrences || e.Count > res.Objects[k.Object] {
				t.Fatalf("inconsistent entry for %v: %+v", k, e)
			}
		}
		// Reading one byte at a time gives the same result.
		res2, err := Scan(iotest.OneByteReader(strings.NewReader(string(data))), keys)
		if err != nil || res2.Lines != res.Lines || res2.Malformed != res.Malformed {
			t.Fatalf("one-byte reads: %+v vs %+v (%v)", res2, res, err)
		}
	})
}
