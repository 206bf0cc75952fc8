// Command validate checks klp --json documents against the schemas of
// docs/schema:
//
//	klp --json status | go run ./docs/schema/validate status
//	go run ./docs/schema/validate outcome load.json unload.json
//
// The first argument names the document (status, patches, blocking, stall,
// poke, outcome, install, list, downgrade, info, preflight, or module);
// the others are files, standard input without any. It prints one line per
// invalid document and exits 1 if there was one, 2 on bad usage.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klp-project/klp/docs/schema"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	docs, err := schema.Documents()
	if err != nil {
		fmt.Fprintf(stderr, "validate: %v\n", err)
		return 1
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: validate DOCUMENT [FILE...]\ndocuments: %s\n", strings.Join(docs, ", "))
		return 2
	}
	doc, files := args[0], args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	code := 0
	for _, f := range files {
		var data []byte
		if f == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err == nil {
			err = schema.Validate(doc, data)
		}
		name := f
		if f == "-" {
			name = "standard input"
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: valid %s document\n", name, doc)
	}
	return code
}
