package admin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kernel"
)

// failOtherUsers makes reading enabled_functions fail with enabled and
// listing the BPF programs fail with bpf (nil: no fault), until t ends.
func (e *env) failOtherUsers(t *testing.T, enabled, bpf error) {
	t.Helper()
	path := filepath.Join(e.k.SysRoot(), "kernel", "tracing", "enabled_functions")
	e.k.InjectReadFault(path, enabled)
	e.k.InjectBPFError(bpf)
	t.Cleanup(func() {
		e.k.InjectReadFault(path, nil)
		e.k.InjectBPFError(nil)
	})
}

// TestOtherUsers: the users of the patched functions come from tracefs
// and from the BPF programs; either source alone still answers, and only
// when both fail is there nothing to say but why. A function nothing else
// uses is not listed.
func TestOtherUsers(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1, Tracefs: true})
	path := e.patchModule(t, "lp", false, "f", "g", "h")
	if _, err := e.load(context.Background(), path, WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.k.AttachBPF(fakekernel.BPFProgram{Name: "ret", Attach: kernel.AttachFmodRet, Function: "f"})
	e.k.AttachBPF(fakekernel.BPFProgram{Name: "watch", Attach: kernel.AttachFexit, Function: "g"})
	funcs := []ftrace.Func{{Object: "vmlinux", Name: "f"}, {Object: "vmlinux", Name: "g"}, {Object: "vmlinux", Name: "h"}, {Object: "vmlinux", Name: "f"}}
	users := func(t *testing.T) ([]string, error) {
		t.Helper()
		got, err := e.m.OtherUsers(funcs)
		var out []string
		for _, fu := range got {
			var who []string
			for _, u := range fu.Users {
				who = append(who, u.String())
			}
			out = append(out, fu.Function+": "+strings.Join(who, ", "))
		}
		return out, err
	}
	whole, err := users(t)
	if err != nil || len(whole) != 2 || !strings.HasPrefix(whole[0], "f: ") || !strings.HasPrefix(whole[1], "g: ") {
		t.Fatalf("every source readable: %q, %v; want f and g, once each, and not h", whole, err)
	}
	// klp list shows them.
	l, err := e.m.List(e.cfg.Store)
	if err != nil || l.OtherUsersErr != nil || len(l.OtherUsers) != 2 || l.OtherUsers[0].Function != "f" || l.OtherUsers[1].Function != "g" {
		t.Errorf("klp list: other users %+v, %v, %v; want f's and g's", l.OtherUsers, l.OtherUsersErr, err)
	}
	for _, tc := range []struct {
		name         string
		enabled, bpf error
		// want are the start of each listed function's users, nil
		// when the read fails.
		want []string
	}{
		{"no BPF list", nil, syscall.EPERM, []string{"f: a direct call (BPF trampoline)", "g: a direct call (BPF trampoline)"}},
		{"no enabled_functions", syscall.EACCES, nil, []string{"f: BPF fmod_ret program ret", "g: BPF fexit program watch"}},
		{"neither", syscall.EACCES, syscall.EPERM, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.failOtherUsers(t, tc.enabled, tc.bpf)
			got, err := users(t)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "operation not permitted") || got != nil {
					t.Errorf("got %q, %v; want no users and both sources' errors", got, err)
				}
				return
			}
			ok := err == nil && len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tc.want[i])
			}
			if !ok {
				t.Errorf("got %q, %v; want users starting %q", got, err, tc.want)
			}
		})
	}
}

// missingRPM owns patch lp; for any other it fails and notes that rpm is
// missing.
type missingRPM struct{}

func (missingRPM) Describe(module string, verbose int) (*PackageInfo, []string, error) {
	if module == "lp" {
		return &PackageInfo{Manager: "rpm", Name: "kernel-livepatch-lp", Version: fmt.Sprint(verbose)}, nil, nil
	}
	return nil, []string{"rpm is not installed"}, errors.New("rpm failed")
}

// TestPatches: klp patches reads the other users only with -v, the
// packages only with -v and a package source; each failed lookup is a
// diagnostic of its own, each note one diagnostic however many patches
// it concerns.
func TestPatches(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1, Tracefs: true})
	for _, p := range []struct {
		name  string
		funcs []string
	}{{"lp", []string{"f", "g"}}, {"lp2", []string{"k"}}, {"lp3", []string{"l"}}} {
		if _, err := e.load(context.Background(), e.patchModule(t, p.name, false, p.funcs...), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	e.k.AttachBPF(fakekernel.BPFProgram{Name: "ret", Attach: kernel.AttachFmodRet, Function: "f"})
	type summary struct {
		Patches     []string // name: package version, other users' functions
		Diagnostics []string
		UsersRead   bool
		UsersErr    bool
	}
	sum := func(pl *PatchList) summary {
		var s summary
		for _, p := range pl.Patches {
			line := p.Name + ":"
			if p.Package != nil {
				line += " package " + p.Package.Name + " " + p.Package.Version
			}
			for _, u := range p.OtherUsers {
				line += " users of " + u.Function
			}
			s.Patches = append(s.Patches, line)
		}
		for _, d := range pl.Diagnostics {
			if d.Err != nil {
				var pe *PackageError
				if !errors.As(d.Err, &pe) {
					t.Errorf("a diagnostic's error %v is no PackageError", d.Err)
				}
				s.Diagnostics = append(s.Diagnostics, "error: "+d.Err.Error())
				continue
			}
			s.Diagnostics = append(s.Diagnostics, "note: "+d.Note)
		}
		s.UsersRead, s.UsersErr = pl.UsersRead, pl.UsersErr != nil
		return s
	}
	bare := []string{"lp:", "lp2:", "lp3:"}
	for _, tc := range []struct {
		name    string
		src     PackageSource
		verbose int
		noUsers bool // neither tracefs nor BPF readable
		want    summary
	}{
		{"plain", missingRPM{}, 0, false, summary{Patches: bare}},
		{"-v without packages", nil, 1, false, summary{Patches: []string{"lp: users of f", "lp2:", "lp3:"}, UsersRead: true}},
		{"-v", missingRPM{}, 1, false, summary{
			Patches:     []string{"lp: package kernel-livepatch-lp 1 users of f", "lp2:", "lp3:"},
			Diagnostics: []string{"error: lp2: rpm failed", "note: rpm is not installed", "error: lp3: rpm failed"},
			UsersRead:   true,
		}},
		{"-vv", missingRPM{}, 2, false, summary{
			Patches:     []string{"lp: package kernel-livepatch-lp 2 users of f", "lp2:", "lp3:"},
			Diagnostics: []string{"error: lp2: rpm failed", "note: rpm is not installed", "error: lp3: rpm failed"},
			UsersRead:   true,
		}},
		{"-v, users unreadable", nil, 1, true, summary{Patches: bare, UsersErr: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noUsers {
				e.failOtherUsers(t, syscall.EACCES, syscall.EPERM)
			}
			pl, err := e.m.Patches(tc.src, tc.verbose)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, sum(pl)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
