// Command gscan runs klp's task scan once, for timing against cscan.
//
//	gscan [-workers N] [-file patch_state] [ROOT]
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/klp-project/klp/livepatch"
)

func main() {
	workers := flag.Int("workers", 0, "scanning goroutines (0: GOMAXPROCS)")
	file := flag.String("file", "patch_state", "per-task file to read")
	flag.Parse()
	root := "/proc"
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	fs, err := livepatch.NewFS("/", root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gscan:", err)
		os.Exit(1)
	}
	var nonidle atomic.Int64
	st, err := fs.ScanTasks(livepatch.ScanOptions{File: *file, Workers: *workers}, func(t livepatch.TaskState) {
		if t.State >= 0 {
			nonidle.Add(1)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gscan:", err)
		os.Exit(1)
	}
	fmt.Printf("%d tasks, %d not idle, %d unreadable\n", st.Tasks, nonidle.Load(), len(st.Unreadable))
}
