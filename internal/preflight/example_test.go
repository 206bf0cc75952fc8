package preflight_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/kernel"
)

// A snapshot of a machine whose kernel has ftrace disabled: the system
// checks, without a module. In klp the roots are --sysfs and --procfs.
func ExampleRun() {
	root, _ := os.MkdirTemp("", "preflight")
	defer os.RemoveAll(root)
	for path, content := range map[string]string{
		"sys/kernel/livepatch/.keep":               "",
		"sys/kernel/security/lockdown":             "[none] integrity confidentiality\n",
		"sys/module/module/parameters/sig_enforce": "N\n",
		"proc/sys/kernel/osrelease":                "6.1.0-56-cloud-amd64\n",
		"proc/sys/kernel/ftrace_enabled":           "0\n",
		"proc/sys/kernel/modules_disabled":         "0\n",
		"proc/sys/kernel/tainted":                  "0\n",
		"proc/modules":                             "",
		"boot/config-6.1.0-56-cloud-amd64":         "CONFIG_LIVEPATCH=y\nCONFIG_HAVE_RELIABLE_STACKTRACE=y\nCONFIG_STACKTRACE=y\n",
	} {
		p := filepath.Join(root, path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	h, err := kernel.Open(kernel.Roots{
		Sys:  filepath.Join(root, "sys"),
		Proc: filepath.Join(root, "proc"),
		Boot: filepath.Join(root, "boot"),
	})
	if err != nil {
		panic(err)
	}
	rep, err := preflight.Run(context.Background(), preflight.Inputs{Kernel: h})
	if err != nil {
		panic(err)
	}
	for _, c := range rep.Checks {
		fmt.Println(c.ID, c.Status)
	}
	fmt.Println("result:", rep.Result())
	// Output:
	// livepatch_supported pass
	// modules_disabled pass
	// ftrace_enabled fail
	// reliable_stacktrace pass
	// lockdown pass
	// sig_enforce pass
	// taint pass
	// transition_in_progress pass
	// forced_patch pass
	// result: fail
}
