package livepatch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fn(name string, sympos int) Function { return Function{Name: name, Sympos: sympos} }

func TestPatchesFixtures(t *testing.T) {
	t.Parallel()
	for fixture, want := range map[string][]Patch{
		// 4.12: transition, no force/signal/replace/stack_order/patched.
		"kernel-4.12": {{
			Name: "livepatch_3_2_1", Enabled: true, Transition: ptr(false),
			Objects: []Object{
				{Name: "vmlinux", Functions: []Function{fn("cmdline_proc_show", 1), fn("show_val_kb", 2)}},
				{Name: "xfs", Functions: []Function{fn("xfs_attr_shortform_verify", 1)}},
			},
		}},
		// 4.15-5.0: signal and force; a disabled patch stays listed.
		"kernel-5.0": {{
			Name: "livepatch_cve_2019_11477", Enabled: true, Transition: ptr(false), HasForce: true, HasSignal: true,
			Objects: []Object{{Name: "vmlinux", Functions: []Function{fn("tcp_fragment", 1), fn("tcp_gso_segment", 1), fn("tcp_sendmsg_locked", 1)}}},
		}, {
			Name: "livepatch_cve_2019_3900", Enabled: false, Transition: ptr(false), HasForce: true, HasSignal: true,
			Objects: []Object{{Name: "vhost_net", Functions: []Function{fn("get_rx_bufs", 1), fn("handle_rx", 1)}}},
		}},
		// 5.1+: force, no signal.
		"kernel-5.1": {{
			Name: "kpatch_hotfix_tcp", Enabled: true, Transition: ptr(false), HasForce: true,
			Objects: []Object{{Name: "vmlinux", Functions: []Function{fn("tcp_retransmit_timer", 1)}}},
		}, {
			Name: "livepatch_1_5_3_2", Enabled: true, Transition: ptr(false), HasForce: true,
			Objects: []Object{{Name: "vmlinux", Functions: []Function{fn("cmdline_proc_show", 1)}}},
		}},
		// 6.1+: <object>/patched, 0 for a target module not loaded.
		"kernel-6.1": {{
			Name: "lp_6_1_0_27_cloud_2", Enabled: true, Transition: ptr(false), HasForce: true,
			Objects: []Object{
				{Name: "cifs", Patched: ptr(false), Functions: []Function{fn("parse_server_interfaces", 1), fn("smb2_query_info_compound", 1)}},
				{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1)}},
			},
		}},
		// 6.11+: replace.
		"kernel-6.11": {{
			Name: "klp_test_hotfix", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(false),
			Objects: []Object{{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("meminfo_proc_show", 1)}}},
		}, {
			Name: "livepatch_3_1_1", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(true),
			Objects: []Object{
				{Name: "nfsd", Patched: ptr(true), Functions: []Function{fn("nfsd4_encode_fattr4", 1)}},
				{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1), fn("nf_tables_newrule", 1), fn("vsock_connect", 1)}},
			},
		}},
		// 6.14+: stack_order; listed by name, not by stack order.
		"kernel-6.14": {{
			Name: "kpatch_cve_2025_21700", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(false), StackOrder: ptr(2),
			Objects: []Object{{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("qdisc_tree_reduce_backlog", 1)}}},
		}, {
			Name: "kpatch_cve_2025_21756", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(false), StackOrder: ptr(1),
			Objects: []Object{{Name: "vsock", Patched: ptr(true), Functions: []Function{fn("__vsock_release", 1), fn("vsock_remove_sock", 1)}}},
		}, {
			Name: "kpatch_vsock_followup", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(false), StackOrder: ptr(3),
			Objects: []Object{{Name: "vsock", Patched: ptr(true), Functions: []Function{fn("vsock_remove_sock", 1)}}},
		}},
		// The proposed replace sets: replace_set instead of replace, no
		// stack_order.
		"replace-set": {{
			Name: "livepatch_db_tune_1", Enabled: true, Transition: ptr(false), HasForce: true, ReplaceSet: ptr(uint32(7)),
			Objects: []Object{{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("tcp_sendmsg", 1)}}},
		}, {
			Name: "livepatch_hotfix", Enabled: true, Transition: ptr(false), HasForce: true, ReplaceSet: ptr(uint32(0)),
			Objects: []Object{{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("meminfo_proc_show", 1)}}},
		}, {
			Name: "livepatch_sle_7_1", Enabled: true, Transition: ptr(false), HasForce: true, ReplaceSet: ptr(uint32(1)),
			Objects: []Object{
				{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1)}},
				{Name: "vsock", Patched: ptr(true), Functions: []Function{fn("vsock_remove_sock", 1)}},
			},
		}},
		"transition-blocking": {{
			Name: "livepatch_1_160000_1_1", Enabled: true, Transition: ptr(false), HasForce: true, Replace: ptr(true),
			Objects: []Object{
				{Name: "nfsd", Patched: ptr(true), Functions: []Function{fn("nfsd4_encode_fattr4", 1)}},
				{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1)}},
			},
		}, {
			Name: "livepatch_2_160000_1_1", Enabled: true, Transition: ptr(true), HasForce: true, Replace: ptr(true),
			Objects: []Object{
				{Name: "nfsd", Patched: ptr(true), Functions: []Function{fn("nfsd4_encode_fattr4", 1)}},
				{Name: "sunrpc", Patched: ptr(true), Functions: []Function{fn("rpc_wait_bit_killable", 1), fn("svc_recv", 1)}},
				{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1), fn("do_sys_poll", 1)}},
			},
		}},
		"transition-unpatching": {{
			Name: "klp_e2e_plain", Enabled: true, Transition: ptr(false), HasForce: true,
			Objects: []Object{{Name: "vmlinux", Patched: ptr(true), Functions: []Function{fn("cmdline_proc_show", 1)}}},
		}, {
			Name: "klp_e2e_target_patch", Enabled: false, Transition: ptr(true), HasForce: true,
			Objects: []Object{{Name: "klp_e2e_target", Patched: ptr(true), Functions: []Function{fn("klp_e2e_target_read", 1), fn("klp_e2e_target_work", 1)}}},
		}},
	} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			fs, _ := fixtureFS(t, fixture)
			got, err := fs.Patches()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Patches(): unexpected diff (-want +got):\n%s", diff)
			}
			// Patch(name) reads the same thing.
			for _, p := range want {
				one, err := fs.Patch(p.Name)
				if err != nil {
					t.Fatalf("Patch(%q): %v", p.Name, err)
				}
				if diff := cmp.Diff(p, one); diff != "" {
					t.Errorf("Patch(%q): unexpected diff (-want +got):\n%s", p.Name, diff)
				}
			}
		})
	}
}

func TestPatchesNotSupported(t *testing.T) {
	t.Parallel()
	for _, fixture := range []string{"no-livepatch", "sle12-kgraft"} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			fs, root := fixtureFS(t, fixture)
			_, err := fs.Patches()
			if !errors.Is(err, ErrNotSupported) {
				t.Errorf("Patches() = %v, want ErrNotSupported", err)
			}
			if err != nil && !strings.Contains(err.Error(), filepath.Join(root, "sys/kernel/livepatch")) {
				t.Errorf("error %q does not name the missing directory", err)
			}
			if _, err := fs.Patch("livepatch_3_2_1"); !errors.Is(err, ErrNotSupported) {
				t.Errorf("Patch() = %v, want ErrNotSupported", err)
			}
		})
	}
}

func TestPatchNotFound(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "kernel-6.11")
	_, err := fs.Patch("livepatch_2_1_1")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Patch() = %v, want ErrNotFound", err)
	}
	if errors.Is(err, ErrNotSupported) {
		t.Errorf("Patch() = %v, must not be ErrNotSupported", err)
	}
}

func TestPatchesSkipFilesAndFollowSymlinks(t *testing.T) {
	t.Parallel()
	// A snapshot of sysfs made with cp -rs or a tar of symlinks: the patch
	// directory is a link. A stray file in the livepatch directory is not
	// a patch.
	fs, _ := archiveFS(t, `symlink sys/kernel/livepatch/lp_linked ../../../snapshot/lp_linked
symlink sys/kernel/livepatch/lp_dangling ../../../snapshot/nowhere
-- sys/kernel/livepatch/README --
not a patch
-- snapshot/lp_linked/enabled --
1
-- snapshot/lp_linked/transition --
0
-- snapshot/lp_linked/vmlinux/cmdline_proc_show,1/ --
-- snapshot/lp_linked/vmlinux/notes.txt --
a file in an object directory is not a function
`)
	got, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	want := []Patch{{
		Name: "lp_linked", Enabled: true, Transition: ptr(false),
		Objects: []Object{{Name: "vmlinux", Functions: []Function{fn("cmdline_proc_show", 1)}}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Patches(): unexpected diff (-want +got):\n%s", diff)
	}
}

func TestPatchesBeforeSympos(t *testing.T) {
	t.Parallel()
	// Before about 4.5 a function directory had no ",sympos" suffix, and
	// before 4.12 there was no transition attribute.
	fs, _ := archiveFS(t, `-- sys/kernel/livepatch/livepatch_sample/enabled --
1
-- sys/kernel/livepatch/livepatch_sample/vmlinux/cmdline_proc_show/ --
`)
	got, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	want := []Patch{{
		Name: "livepatch_sample", Enabled: true,
		Objects: []Object{{Name: "vmlinux", Functions: []Function{{Name: "cmdline_proc_show"}}}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Patches(): unexpected diff (-want +got):\n%s", diff)
	}
	if got[0].InTransition() {
		t.Error("InTransition() = true for a kernel without the transition attribute")
	}
	if d := got[0].Objects[0].Functions[0].DirName(); d != "cmdline_proc_show" {
		t.Errorf("DirName() = %q, want %q", d, "cmdline_proc_show")
	}
}

func TestPatchesReplaceNonZero(t *testing.T) {
	t.Parallel()
	// The kernel prints 0 or 1; any non-zero value is replace.
	fs, _ := archiveFS(t, `-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
0
-- sys/kernel/livepatch/lp/replace --
7
`)
	p, err := fs.Patch("lp")
	if err != nil {
		t.Fatal(err)
	}
	if p.Replace == nil || !*p.Replace {
		t.Errorf("Replace = %v, want true", p.Replace)
	}
}

// TestPatchesErrorFixtures reads the error trees: each must give an error
// that names the faulty file and, for bad content, wraps ErrParse.
func TestPatchesErrorFixtures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fixture string
		parse   bool   // errors.Is(err, ErrParse)
		naming  string // part of the message
	}{
		{"error-enabled-garbage", true, "sys/kernel/livepatch/klp_broken/enabled"},
		{"error-bad-sympos", true, `"foo,bar"`},
		{"error-no-enabled", false, "sys/kernel/livepatch/klp_half_created/enabled"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			fs, _ := fixtureFS(t, tc.fixture)
			_, err := fs.Patches()
			if err == nil {
				t.Fatal("Patches() succeeded")
			}
			if got := errors.Is(err, ErrParse); got != tc.parse {
				t.Errorf("errors.Is(%v, ErrParse) = %v, want %v", err, got, tc.parse)
			}
			if !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %q does not mention %s", err, tc.naming)
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotSupported) {
				t.Errorf("error %v must not look like a missing patch or kernel", err)
			}
		})
	}
}

func TestPatchAttributeGarbage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ file, content string }{
		{"enabled", "banana"},
		{"enabled", "2"},
		{"enabled", ""},
		{"transition", "yes"},
		{"transition", "-1"},
		{"replace", "true"},
		{"stack_order", "first"},
		{"replace_set", "-1"},
		{"replace_set", "4294967296"},
		{"replace_set", "one"},
		{"vmlinux/patched", "2"},
	} {
		t.Run(tc.file+"="+tc.content, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{
				"enabled": "1", "transition": "0", "replace": "0", "stack_order": "1", "replace_set": "4294967295", "vmlinux/patched": "1",
			}
			files[tc.file] = tc.content
			var b strings.Builder
			for name, data := range files {
				b.WriteString("-- sys/kernel/livepatch/lp/" + name + " --\n" + data + "\n")
			}
			fs, root := archiveFS(t, b.String())
			_, err := fs.Patch("lp")
			if !errors.Is(err, ErrParse) {
				t.Fatalf("Patch() = %v, want ErrParse", err)
			}
			if path := filepath.Join(root, "sys/kernel/livepatch/lp", tc.file); !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if _, err := fs.Patches(); !errors.Is(err, ErrParse) {
				t.Errorf("Patches() = %v, want ErrParse", err)
			}
		})
	}
}

func TestParseFunctionDir(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Function{
		"cmdline_proc_show,1":  fn("cmdline_proc_show", 1),
		"show_val_kb,2":        fn("show_val_kb", 2),
		"__x64_sys_keyctl,1":   fn("__x64_sys_keyctl", 1),
		"do_sys_poll.isra.0,3": fn("do_sys_poll.isra.0", 3),
		"f,9":                  fn("f", 9),
		"f,19":                 fn("f", 19),
		"cmdline_proc_show":    {Name: "cmdline_proc_show"},
	} {
		got, err := parseFunctionDir(in)
		if err != nil {
			t.Errorf("parseFunctionDir(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("parseFunctionDir(%q) = %+v, want %+v", in, got, want)
		}
	}
	for _, in := range []string{"foo,bar", "foo,", ",1", "foo,-1", "foo,1,2", "foo,0x1"} {
		if got, err := parseFunctionDir(in); !errors.Is(err, ErrParse) {
			t.Errorf("parseFunctionDir(%q) = %+v, %v, want ErrParse", in, got, err)
		}
	}
}

// TestParseFunctionDirRoundTrip checks that a parsed directory name gives
// back the directory it came from. The kernel names function directories
// "%s,%lu" with a sympos of at least 1 (0, "unique", is shown as 1), and
// Function.Sympos 0 means "no suffix" (DirName "foo"), so "foo,0", "foo,01"
// or "foo,+1" are not what the kernel prints and must not parse into a
// Function whose DirName is another directory.
func TestParseFunctionDirRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"cmdline_proc_show,1", "show_val_kb,12", "plain", "foo,0", "foo,01", "foo,+1"} {
		f, err := parseFunctionDir(in)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Errorf("parseFunctionDir(%q) = %v, want nil or ErrParse", in, err)
			}
			continue
		}
		if got := f.DirName(); got != in {
			t.Errorf("parseFunctionDir(%q) = %+v, whose DirName() is %q", in, f, got)
		}
	}
}

func TestTransitionPatch(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "transition-blocking")
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	tp := fs.TransitionPatch(patches)
	if tp == nil || tp.Name != "livepatch_2_160000_1_1" {
		t.Fatalf("TransitionPatch() = %+v, want livepatch_2_160000_1_1", tp)
	}
	// It points into the slice.
	if tp != &patches[1] {
		t.Error("TransitionPatch() does not point into the given slice")
	}
	if tp := fs.TransitionPatch(patches[:1]); tp != nil {
		t.Errorf("TransitionPatch(steady patches) = %+v, want nil", tp)
	}
}

func TestPatchesVanishedDirectory(t *testing.T) {
	t.Parallel()
	// A patch directory that goes away between listing and reading (the
	// kernel removes it asynchronously after a disable) is ErrNotFound from
	// Patch, never a read error.
	fs, root := fixtureFS(t, "kernel-6.11")
	if err := os.RemoveAll(filepath.Join(root, "sys/kernel/livepatch/klp_test_hotfix")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Patch("klp_test_hotfix"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Patch() = %v, want ErrNotFound", err)
	}
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	if len(patches) != 1 || patches[0].Name != "livepatch_3_1_1" {
		t.Errorf("Patches() = %+v, want livepatch_3_1_1 alone", patches)
	}
}
