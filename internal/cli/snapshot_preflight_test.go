package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPreflightSnapshot: klp preflight of every test module, and of the
// system alone, predicts on a snapshot exactly what it predicts on the tree
// the snapshot was taken of, text (-v, with the details) and JSON, for
// systems that pass and systems that fail in various ways.
func TestPreflightSnapshot(t *testing.T) {
	t.Parallel()
	patched := map[string]string{
		"sys/kernel/livepatch/klp_vmlinux/enabled":                      "1\n",
		"sys/kernel/livepatch/klp_vmlinux/transition":                   "0\n",
		"sys/kernel/livepatch/klp_vmlinux/vmlinux/patched":              "1\n",
		"sys/kernel/livepatch/klp_vmlinux/vmlinux/cmdline_proc_show,1/": "",
		"proc/modules":                         "klp_vmlinux 16384 1 - Live 0x0000000000000000 (OEK)\nklp_target 16384 0 - Live 0x0000000000000000 (O)\n",
		"sys/module/klp_vmlinux/refcnt":        "1\n",
		"sys/module/klp_vmlinux/initstate":     "live\n",
		"sys/module/klp_vmlinux/srcversion":    "0123456789ABCDEF0123456\n",
		"sys/module/klp_target/initstate":      "live\n",
		"sys/module/klp_target/refcnt":         "0\n",
		"sys/kernel/tracing/enabled_functions": "cmdline_proc_show (1) R I   \ttramp: ftrace_regs_caller (klp_ftrace_handler+0x0/0x100)\n",
		"proc/kallsyms": "0000000000000000 t cmdline_proc_show\n0000000000000000 t version_proc_show\n0000000000000000 t version_proc_show\n" +
			"0000000000000000 t meminfo_proc_show\n0000000000000000 t klp_target_value\t[klp_target]\n",
		"proc/sys/kernel/tainted": "12288\n",
	}
	trees := map[string]map[string]string{
		"healthy":      nil,
		"ftrace-off":   {"proc/sys/kernel/ftrace_enabled": "0\n"},
		"enforcing":    {"sys/module/module/parameters/sig_enforce": "Y\n"},
		"lockdown":     {"sys/kernel/security/lockdown": "none [integrity] confidentiality\n"},
		"no-config":    {"boot/config-" + pfRelease: pfDelete},
		"no-tracing":   {"sys/kernel/tracing/available_filter_functions": pfDelete, "sys/kernel/tracing/enabled_functions": pfDelete, "sys/kernel/debug/kprobes/list": pfDelete},
		"kprobe":       {"sys/kernel/debug/kprobes/list": "ffffffff81234560  k  cmdline_proc_show+0x0    [FTRACE]\n"},
		"patched":      patched,
		"transition":   merge(patched, map[string]string{"sys/kernel/livepatch/klp_vmlinux/transition": "1\n"}),
		"no-livepatch": {"sys/kernel/livepatch/": pfDelete, "sys/kernel/kgraft/": ""},
	}
	modules := []string{"", "klp_vmlinux.ko", "klp_twoobj.ko", "klp_replace.ko", "klp_target.ko", "klp_klpsym.ko", "livepatch-e2e-build.ko", "klp_vmlinux.ko.zst"}
	for name, edits := range trees {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := pfTree(t, edits)
			file := filepath.Join(t.TempDir(), "s.tar.zst")
			if _, errOut, code := pfRun(t, root, nil, "snapshot", "-o", file); code != ExitOK {
				t.Fatalf("snapshot: exit %d: %s", code, errOut)
			}
			for _, m := range modules {
				for _, flag := range []string{"-v", "--json"} {
					args := []string{"preflight", flag}
					if m != "" {
						args = append(args, filepath.Join(pfModules, m))
					}
					want, wantErr, wantCode := pfRun(t, root, nil, args...)
					got, gotErr, gotCode := pfRun(t, "", nil, append([]string{"--snapshot", file}, args...)...)
					if !strings.Contains(want, "result") {
						t.Fatalf("preflight %s %s on the tree printed no result: %q %q", flag, m, want, wantErr)
					}
					want = strings.ReplaceAll(want, root, "")
					if testing.Verbose() && flag == "-v" {
						t.Logf("preflight %s %s on the snapshot:\n%s", flag, m, got)
					}
					if diff := cmp.Diff(want, got); diff != "" || wantCode != gotCode || wantErr != gotErr {
						t.Errorf("preflight %s %s: exit %d/%d, stderr %q/%q, stdout (-tree +snapshot):\n%s", flag, m, wantCode, gotCode, wantErr, gotErr, diff)
					}
				}
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
