// Command gen-docs writes klp's man pages and shell completion scripts.
//
//	go run ./cmd/gen-docs -man docs/man -completion DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klp-project/klp/internal/cli"
)

func main() {
	manDir := flag.String("man", "", "write klp.8 and kgr.8 into this directory")
	compDir := flag.String("completion", "", "write bash, zsh and fish completion scripts into this directory")
	flag.Parse()
	if *manDir == "" && *compDir == "" {
		fmt.Fprintln(os.Stderr, "gen-docs: give -man DIR and/or -completion DIR")
		os.Exit(2)
	}
	if err := run(*manDir, *compDir); err != nil {
		fmt.Fprintln(os.Stderr, "gen-docs:", err)
		os.Exit(1)
	}
}

func run(manDir, compDir string) error {
	if manDir != "" {
		for _, prog := range []string{"klp", "kgr"} {
			if err := os.WriteFile(filepath.Join(manDir, prog+".8"), cli.ManPage(prog), 0o644); err != nil {
				return err
			}
		}
	}
	if compDir != "" {
		files := map[string]string{"bash": "%s.bash", "zsh": "_%s", "fish": "%s.fish"}
		for _, prog := range []string{"klp", "kgr"} {
			for shell, pattern := range files {
				f, err := os.Create(filepath.Join(compDir, fmt.Sprintf(pattern, prog)))
				if err != nil {
					return err
				}
				if err := cli.Completion(prog, shell, f); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
