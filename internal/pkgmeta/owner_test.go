package pkgmeta

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	lpFile   = "/lib/modules/5.14.21-150400.24.33-default/livepatch/livepatch-6-150400_2_2.ko"
	lpUsr    = "/usr/lib/modules/5.14.21-150400.24.33-default/livepatch/livepatch-6-150400_2_2.ko"
	rpmQF    = "rpm -qf --qf %{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n "
	dpkgQ    = "dpkg-query -W -f ${Package}\\t${Version}\\t${Architecture}\\n "
	lpRPMOut = "kernel-livepatch-5_14_21-150400_24_33-default\t6\t150400.2.2\tx86_64\n"
)

var lpPkg = Package{Manager: RPM, Name: "kernel-livepatch-5_14_21-150400_24_33-default", Version: "6", Release: "150400.2.2", Arch: "x86_64"}

func TestOwner(t *testing.T) {
	t.Parallel()
	debPkg := &Package{Manager: Dpkg, Name: "linux-livepatch-6.1.0-18", Version: "1:3-1+deb12u1", Arch: "amd64"}
	tests := []struct {
		name      string
		installed []string
		replies   map[string]reply
		file      string
		want      *Package
		wantErr   error
		wantCalls []string
	}{
		{
			name:      "rpm",
			installed: []string{"rpm"},
			replies:   map[string]reply{rpmQF + lpFile: {out: lpRPMOut}},
			file:      lpFile,
			want:      &lpPkg,
		},
		{
			name:      "rpm, several owners: the first",
			installed: []string{"rpm"},
			replies:   map[string]reply{rpmQF + lpFile: {out: lpRPMOut + "other\t1\t1\tnoarch\n"}},
			file:      lpFile,
			want:      &lpPkg,
		},
		{
			name:      "rpm knows the usr-merged path",
			installed: []string{"rpm"},
			replies: map[string]reply{
				rpmQF + lpFile: {out: "file " + lpFile + " is not owned by any package\n", code: 1},
				rpmQF + lpUsr:  {out: lpRPMOut},
			},
			file: lpFile,
			want: &lpPkg,
		},
		{
			name:      "not owned",
			installed: []string{"rpm"},
			replies: map[string]reply{
				rpmQF + lpFile: {out: "file is not owned by any package\n", code: 1},
				rpmQF + lpUsr:  {code: 1, stderr: "error: file: No such file or directory"},
			},
			file:    lpFile,
			wantErr: ErrNotOwned,
		},
		{
			name:      "rpm without database, then dpkg",
			installed: []string{"rpm", "dpkg", "dpkg-query"},
			replies: map[string]reply{
				rpmQF + "/lib/modules/k/updates/lp.ko":     {code: 1},
				rpmQF + "/usr/lib/modules/k/updates/lp.ko": {code: 1},
				"dpkg -S /lib/modules/k/updates/lp.ko":     {out: "diversion by x from: /lib/modules/k/updates/lp.ko\nlinux-livepatch-6.1.0-18: /lib/modules/k/updates/lp.ko\n"},
				dpkgQ + "linux-livepatch-6.1.0-18":         {out: "linux-livepatch-6.1.0-18\t1:3-1+deb12u1\tamd64\n"},
			},
			file: "/lib/modules/k/updates/lp.ko",
			want: debPkg,
		},
		{
			name:      "dpkg only knows /lib (Debian 12 usrmerge)",
			installed: []string{"dpkg", "dpkg-query"},
			replies: map[string]reply{
				"dpkg -S /usr/lib/modules/k/updates/lp.ko": {code: 1, stderr: "dpkg-query: no path found matching pattern"},
				"dpkg -S /lib/modules/k/updates/lp.ko":     {out: "linux-livepatch-6.1.0-18:amd64, other: /lib/modules/k/updates/lp.ko\n"},
				dpkgQ + "linux-livepatch-6.1.0-18:amd64":   {out: "linux-livepatch-6.1.0-18\t1:3-1+deb12u1\tamd64\n"},
			},
			file: "/usr/lib/modules/k/updates/lp.ko",
			want: debPkg,
		},
		{
			name:    "no package manager",
			file:    lpFile,
			wantErr: ErrNoPackageManager,
		},
		{
			name:      "rpm fails badly",
			installed: []string{"rpm"},
			replies: map[string]reply{
				rpmQF + lpFile: {code: 2, stderr: "error: cannot open Packages database"},
				rpmQF + lpUsr:  {code: 1},
			},
			file: lpFile,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.installed, tt.replies)
			got, err := New(Config{Runner: f}).Owner(context.Background(), tt.file)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("package (-want +got):\n%s", diff)
			}
			switch {
			case tt.want != nil:
				if err != nil {
					t.Errorf("err = %v", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), "cannot open Packages database") || !strings.Contains(err.Error(), "exit status 2") {
					t.Errorf("err = %v", err)
				}
			}
		})
	}
}

func TestPackageStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pkg           Package
		full, edition string
	}{
		{lpPkg, "kernel-livepatch-5_14_21-150400_24_33-default-6-150400.2.2.x86_64", "6-150400.2.2"},
		{Package{Manager: Dpkg, Name: "lp", Version: "1:3-1", Arch: "amd64"}, "lp_3-1_amd64", "1:3-1"},
		{Package{Manager: Dpkg, Name: "lp", Version: "3", Arch: "all"}, "lp_3_all", "3"},
	}
	for _, tt := range tests {
		if got := tt.pkg.Full(); got != tt.full {
			t.Errorf("Full() = %q, want %q", got, tt.full)
		}
		if got := tt.pkg.Edition(); got != tt.edition {
			t.Errorf("Edition() = %q, want %q", got, tt.edition)
		}
	}
}
