package livepatch_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/klp-project/klp/livepatch"
)

// A patch in transition, read from a snapshot of another machine's sysfs
// and procfs, with the tasks that still block it.
func Example() {
	root, _ := os.MkdirTemp("", "klp-example-")
	defer os.RemoveAll(root)
	for path, content := range map[string]string{
		"sys/kernel/livepatch/fix/enabled":                      "1\n",
		"sys/kernel/livepatch/fix/transition":                   "1\n",
		"sys/kernel/livepatch/fix/vmlinux/cmdline_proc_show,1/": "",
		"proc/1/task/1/patch_state":                             "1\n",
		"proc/88/task/88/patch_state":                           "0\n",
	} {
		p := filepath.Join(root, path)
		if filepath.Base(path) == "cmdline_proc_show,1" || path[len(path)-1] == '/' {
			_ = os.MkdirAll(p, 0o755)
			continue
		}
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte(content), 0o644)
	}

	fs, err := livepatch.NewFS(filepath.Join(root, "sys"), filepath.Join(root, "proc"))
	if err != nil {
		fmt.Println(err)
		return
	}
	patches, err := fs.Patches()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range patches {
		fmt.Println(p.Name, "enabled:", p.Enabled, "in transition:", p.InTransition(), "functions:", p.Objects[0].Functions)
	}
	b, err := fs.BlockingTasks(patches)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Transition.Patch, b.Transition.Direction())
	for _, t := range b.Tasks {
		fmt.Println("blocking:", t.TID, t.State)
	}
	// Output:
	// fix enabled: true in transition: true functions: [{cmdline_proc_show 1}]
	// fix patching
	// blocking: 88 unpatched
}
