package pkgmeta

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const zypperSearch = "zypper --non-interactive --quiet --xmlout search -s --match-exact kernel-livepatch-5_14_21-150400_24_33-default"

// zypperXML is zypper --xmlout search -s output for a live patch package
// with the installed version 6 and versions 3 to 7 in the repositories
// (and a patch, a source package and another architecture's package of
// the same name, none of them a version of it).
const zypperXML = `<?xml version='1.0'?>
<stream>
<search-result version="0.0">
<solvable-list>
<solvable status="other-version" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="7-150400.2.1" arch="x86_64" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
<solvable status="installed" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="6-150400.2.2" arch="x86_64" repository="(System Packages)"/>
<solvable status="other-version" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="6-150400.2.2" arch="x86_64" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
<solvable status="other-version" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="3-150400.2.1" arch="x86_64" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
<solvable status="other-version" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="5-150400.2.1" arch="x86_64" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
<solvable status="not-installed" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="srcpackage" edition="5-150400.2.4" arch="noarch" repository="SLE-Module-Live-Patching15-SP4-Source"/>
<solvable status="not-installed" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="patch" edition="9-1" arch="x86_64" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
<solvable status="not-installed" name="kernel-livepatch-5_14_21-150400_24_33-default" kind="package" edition="5-150400.2.5" arch="ppc64le" repository="SLE-Module-Live-Patching15-SP4-Updates"/>
</solvable-list>
</search-result>
</stream>
`

const zypperLockedXML = `<?xml version='1.0'?>
<stream>
<message type="error">System management is locked by the application with pid 4242 (zypper).
Close this application before trying again.</message>
</stream>
`

func TestParseZypperSearch(t *testing.T) {
	t.Parallel()
	got, err := parseZypperSearch([]byte(zypperXML))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("got %d solvables", len(got))
	}
	want := zypperSolvable{Status: "installed", Name: lpPkg.Name, Kind: "package", Edition: "6-150400.2.2", Arch: "x86_64", Repository: "(System Packages)"}
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseZypperSearch([]byte("<stream><oops")); err == nil {
		t.Error("no error for broken XML")
	}
	if got, err := parseZypperSearch(nil); err != nil || got != nil {
		t.Errorf("empty output: %v, %v", got, err)
	}
	if msg := zypperMessages([]byte(zypperLockedXML)); !strings.HasPrefix(msg, "System management is locked") {
		t.Errorf("message = %q", msg)
	}
}

func TestVersionsZypper(t *testing.T) {
	t.Parallel()
	f := newFake(t, []string{"zypper"}, map[string]reply{zypperSearch: {out: zypperXML}})
	got, err := New(Config{Runner: f}).Versions(context.Background(), lpPkg)
	if err != nil {
		t.Fatal(err)
	}
	var editions []string
	for _, v := range got {
		editions = append(editions, v.Edition)
	}
	// Same name, kind package, same architecture.
	if want := []string{"7-150400.2.1", "6-150400.2.2", "6-150400.2.2", "3-150400.2.1", "5-150400.2.1"}; !cmp.Equal(want, editions) {
		t.Errorf("editions = %q, want %q", editions, want)
	}
	if !got[1].Installed || got[0].Installed {
		t.Errorf("installed flags wrong: %+v", got)
	}
}

func TestUpdateStatus(t *testing.T) {
	t.Parallel()
	debPkg := Package{Manager: Dpkg, Name: "bash", Version: "5.2.15-2+b8", Arch: "amd64"}
	const aptPolicy = `bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
`
	tests := []struct {
		name      string
		pkg       Package
		installed []string
		replies   map[string]reply
		want      string
		wantNote  string
	}{
		{
			name: "update available", pkg: lpPkg, installed: []string{"zypper"},
			replies: map[string]reply{zypperSearch: {out: zypperXML}},
			want:    "update available (7-150400.2.1)",
		},
		{
			name: "up to date", pkg: Package{Manager: RPM, Name: lpPkg.Name, Version: "7", Release: "150400.2.1", Arch: "x86_64"},
			installed: []string{"zypper"}, replies: map[string]reply{zypperSearch: {out: zypperXML}},
			want: "up to date",
		},
		{
			name: "not in any repository", pkg: lpPkg, installed: []string{"zypper"},
			replies: map[string]reply{zypperSearch: {code: 104, out: "<?xml version='1.0'?>\n<stream>\n<message type=\"info\">No matching items found.</message>\n</stream>\n"}},
			want:    "up to date",
		},
		{
			name: "no repositories", pkg: lpPkg, installed: []string{"zypper"},
			replies:  map[string]reply{zypperSearch: {code: 6, out: "<?xml version='1.0'?>\n<stream>\n<message type=\"warning\">No repositories defined.</message>\n</stream>\n"}},
			want:     "unknown (no repositories)",
			wantNote: "search for kernel-livepatch-5_14_21-150400_24_33-default: zypper has no repositories defined",
		},
		{
			name: "zypper missing", pkg: lpPkg,
			want: "unknown (zypper not installed)", wantNote: "zypper is not installed; the update status of live patch packages is unknown",
		},
		{
			name: "zypper locked", pkg: lpPkg, installed: []string{"zypper"},
			replies:  map[string]reply{zypperSearch: {code: 7, out: zypperLockedXML}},
			want:     "unknown (zypper failed: exit status 7)",
			wantNote: "search for kernel-livepatch-5_14_21-150400_24_33-default: zypper: exit status 7 (System management is locked",
		},
		{
			name: "zypper prints garbage", pkg: lpPkg, installed: []string{"zypper"},
			replies:  map[string]reply{zypperSearch: {out: "Loading repository data...\n"}},
			want:     "unknown (query failed)",
			wantNote: "search for kernel-livepatch-5_14_21-150400_24_33-default: parse zypper XML: ",
		},
		{
			name: "apt update", pkg: debPkg, installed: []string{"apt-cache"},
			replies: map[string]reply{"apt-cache policy bash": {out: aptPolicy}},
			want:    "update available (5.2.15-2+b13)",
		},
		{
			name: "apt up to date", pkg: Package{Manager: Dpkg, Name: "bash", Version: "5.2.15-2+b13"}, installed: []string{"apt-cache"},
			replies: map[string]reply{"apt-cache policy bash": {out: aptPolicy}},
			want:    "up to date",
		},
		{
			name: "apt pinned lower", pkg: Package{Manager: Dpkg, Name: "bash", Version: "5.2.15-3"}, installed: []string{"apt-cache"},
			replies: map[string]reply{"apt-cache policy bash": {out: aptPolicy}},
			want:    "up to date",
		},
		{
			name: "apt unknown package", pkg: debPkg, installed: []string{"apt-cache"},
			replies: map[string]reply{"apt-cache policy bash": {}},
			want:    "up to date",
		},
		{
			name: "apt missing", pkg: debPkg,
			want: "unknown (apt-cache not installed)", wantNote: "apt-cache is not installed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.installed, tt.replies)
			got, notes := New(Config{Runner: f}).UpdateStatus(context.Background(), tt.pkg)
			if got != tt.want {
				t.Errorf("status = %q, want %q", got, tt.want)
			}
			switch {
			case tt.wantNote == "" && len(notes) != 0:
				t.Errorf("notes = %q", notes)
			case tt.wantNote != "" && (len(notes) != 1 || !strings.HasPrefix(notes[0], tt.wantNote)):
				t.Errorf("notes = %q, want one starting %q", notes, tt.wantNote)
			}
		})
	}
}

func TestParseAptPolicy(t *testing.T) {
	t.Parallel()
	const out = `linux-livepatch:
  Installed: 3-1
  Candidate: (none)
  Version table:
     4-1 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
 *** 3-1 100
        100 /var/lib/dpkg/status
     1:0.9-1 -10
        -10 http://example.com/debian bookworm/main amd64 Packages
`
	vs, candidate := parseAptPolicy([]byte(out))
	want := []Available{
		{Edition: "4-1", Repository: "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"},
		{Edition: "3-1", Repository: "/var/lib/dpkg/status", Installed: true},
		{Edition: "1:0.9-1", Repository: "http://example.com/debian bookworm/main amd64 Packages"},
	}
	if diff := cmp.Diff(want, vs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if candidate != "" {
		t.Errorf("candidate = %q", candidate)
	}
}

func TestPreviousAndNewest(t *testing.T) {
	t.Parallel()
	vs := []Available{{Edition: "7-1"}, {Edition: "6-2"}, {Edition: "10-1"}, {Edition: "5-9"}, {Edition: "6-1"}, {Edition: ""}}
	tests := []struct {
		installed    string
		prev, newest string
	}{
		{"6-2", "6-1", "10-1"}, // a rebuild of the same version is older
		{"10-1", "7-1", ""},
		{"5-9", "", "10-1"},
		{"1:1-1", "10-1", ""}, // the epoch makes everything older
	}
	for _, tt := range tests {
		p, ok := Previous(RPM, tt.installed, vs)
		if (tt.prev == "") == ok || p.Edition != tt.prev {
			t.Errorf("Previous(%s) = %q, %v; want %q", tt.installed, p.Edition, ok, tt.prev)
		}
		n, ok := Newest(RPM, tt.installed, vs)
		if (tt.newest == "") == ok || n.Edition != tt.newest {
			t.Errorf("Newest(%s) = %q, %v; want %q", tt.installed, n.Edition, ok, tt.newest)
		}
	}
	deb := []Available{{Edition: "3-1"}, {Edition: "3~rc1-1"}, {Edition: "2.9-1"}}
	if p, _ := Previous(Dpkg, "3-1", deb); p.Edition != "3~rc1-1" {
		t.Errorf("Debian previous = %q", p.Edition)
	}
}

func TestDowngradeCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pkg  Package
		nonI bool
		want string
	}{
		{lpPkg, false, "zypper in --oldpackage kernel-livepatch-5_14_21-150400_24_33-default=5-150400.2.1"},
		{lpPkg, true, "zypper --non-interactive in --oldpackage kernel-livepatch-5_14_21-150400_24_33-default=5-150400.2.1"},
		{Package{Manager: Dpkg, Name: "lp"}, false, "apt-get install --allow-downgrades lp=5-150400.2.1"},
		{Package{Manager: Dpkg, Name: "lp"}, true, "apt-get --yes install --allow-downgrades lp=5-150400.2.1"},
	}
	for _, tt := range tests {
		if got := strings.Join(DowngradeCommand(tt.pkg, "5-150400.2.1", tt.nonI), " "); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestPlanDowngrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pkg       Package
		installed []string
		replies   map[string]reply
		nonI      bool
		want      *Plan
		wantErr   string
		wantIs    error
	}{
		{
			name: "rpm", pkg: lpPkg, installed: []string{"zypper"},
			replies: map[string]reply{zypperSearch: {out: zypperXML}},
			want: &Plan{Package: lpPkg, From: "6-150400.2.2", To: "5-150400.2.1",
				Command: []string{"zypper", "in", "--oldpackage", lpPkg.Name + "=5-150400.2.1"}},
		},
		{
			name: "rpm -n", pkg: lpPkg, installed: []string{"zypper"}, nonI: true,
			replies: map[string]reply{zypperSearch: {out: zypperXML}},
			want: &Plan{Package: lpPkg, From: "6-150400.2.2", To: "5-150400.2.1",
				Command: []string{"zypper", "--non-interactive", "in", "--oldpackage", lpPkg.Name + "=5-150400.2.1"}},
		},
		{
			name: "no previous version", pkg: Package{Manager: RPM, Name: lpPkg.Name, Version: "3", Release: "150400.2.1", Arch: "x86_64"},
			installed: []string{"zypper"}, replies: map[string]reply{zypperSearch: {out: zypperXML}},
			wantIs:  ErrNoPreviousVersion,
			wantErr: "no previous version available: the repositories have no version of kernel-livepatch-5_14_21-150400_24_33-default older than 3-150400.2.1 (versions found: 7-150400.2.1, 6-150400.2.2, 6-150400.2.2, 3-150400.2.1, 5-150400.2.1)",
		},
		{
			name: "package in no repository", pkg: lpPkg, installed: []string{"zypper"},
			replies: map[string]reply{zypperSearch: {code: 104}},
			wantIs:  ErrNoPreviousVersion,
			wantErr: "(it has no versions at all)",
		},
		{
			name: "zypper missing", pkg: lpPkg,
			wantIs:  ErrToolMissing,
			wantErr: "zypper is not installed; it is needed to list the versions of kernel-livepatch-5_14_21-150400_24_33-default",
		},
		{
			name: "zypper fails", pkg: lpPkg, installed: []string{"zypper"},
			replies: map[string]reply{zypperSearch: {code: 7, out: zypperLockedXML}},
			wantErr: "search for kernel-livepatch-5_14_21-150400_24_33-default: zypper: exit status 7 (System management is locked",
		},
		{
			name: "dpkg", pkg: Package{Manager: Dpkg, Name: "lp", Version: "3-1"}, installed: []string{"apt-cache", "apt-get"},
			replies: map[string]reply{"apt-cache policy lp": {out: "lp:\n  Installed: 3-1\n  Candidate: 3-1\n  Version table:\n *** 3-1 500\n        500 http://x y Packages\n     2-1 500\n        500 http://x y Packages\n"}},
			want: &Plan{Package: Package{Manager: Dpkg, Name: "lp", Version: "3-1"}, From: "3-1", To: "2-1",
				Command: []string{"apt-get", "install", "--allow-downgrades", "lp=2-1"}},
		},
		{
			name: "apt-get missing", pkg: Package{Manager: Dpkg, Name: "lp", Version: "3-1"}, installed: []string{"apt-cache"},
			replies: map[string]reply{"apt-cache policy lp": {out: "lp:\n  Version table:\n *** 3-1 500\n     2-1 500\n"}},
			wantIs:  ErrToolMissing,
			wantErr: "apt-get is not installed; it is needed to install lp 2-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.installed, tt.replies)
			got, err := New(Config{Runner: f}).PlanDowngrade(context.Background(), tt.pkg, tt.nonI)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if tt.want != nil {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestExecute(t *testing.T) {
	t.Parallel()
	plan := &Plan{Command: []string{"zypper", "--non-interactive", "in", "--oldpackage", "lp=5-1"}}
	tests := []struct {
		code     int
		wantErr  string
		wantNote string
	}{
		{code: 0},
		{code: 102, wantNote: "zypper reports that a reboot is needed (exit status 102)"},
		{code: 103, wantNote: "zypper reports that it updated itself"},
		{code: 8, wantErr: "run zypper --non-interactive in --oldpackage lp=5-1: zypper: exit status 8"},
		{code: 107, wantErr: "exit status 107"},
	}
	for _, tt := range tests {
		f := newFake(t, []string{"zypper"}, nil)
		var gotArgv []string
		var out strings.Builder
		f.attach = func(stdio Stdio, argv []string) error {
			gotArgv = argv
			stdio.Out.Write([]byte("Loading repository data...\n"))
			if tt.code != 0 {
				return &ExitError{Name: argv[0], Code: tt.code}
			}
			return nil
		}
		notes, err := New(Config{Runner: f}).Execute(context.Background(), plan, Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
		if !cmp.Equal(plan.Command, gotArgv) {
			t.Errorf("ran %q", gotArgv)
		}
		if out.String() != "Loading repository data...\n" {
			t.Errorf("output not passed through: %q", out.String())
		}
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("code %d: err = %v, want %q", tt.code, err, tt.wantErr)
		}
		if tt.wantNote == "" && len(notes) != 0 || tt.wantNote != "" && (len(notes) != 1 || !strings.HasPrefix(notes[0], tt.wantNote)) {
			t.Errorf("code %d: notes = %q", tt.code, notes)
		}
		var ee *ExitError
		if tt.wantErr != "" && (!errors.As(err, &ee) || ee.Code != tt.code) {
			t.Errorf("code %d: exit status not kept in %v", tt.code, err)
		}
	}
	if _, err := New(Config{}).Execute(context.Background(), &Plan{}, Stdio{}); err == nil {
		t.Error("empty plan ran")
	}
}

// TestZypperMessages: the errors and warnings zypper printed, not its
// other messages.
func TestZypperMessages(t *testing.T) {
	t.Parallel()
	out := `<?xml version='1.0'?>
<stream>
<message type="info">Loading repository data...</message>
<message type="warning">Repository 'Updates' is out-of-date.</message>
<message type="error">Package not found.</message>
</stream>
`
	if got, want := zypperMessages([]byte(out)), "Repository 'Updates' is out-of-date.; Package not found."; got != want {
		t.Errorf("zypperMessages = %q, want %q", got, want)
	}
}

// TestCompareByManager: each manager's own order ("1.0a" and "1.0+" sort
// one way for dpkg, where a letter sorts before any other character, and
// the other for rpm, where "+" separates).
func TestCompareByManager(t *testing.T) {
	t.Parallel()
	if got := Compare(Dpkg, "1.0a", "1.0+"); got != -1 {
		t.Errorf("dpkg: %d, want -1", got)
	}
	if got := Compare(RPM, "1.0a", "1.0+"); got != 1 {
		t.Errorf("rpm: %d, want 1", got)
	}
}
