package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/klp-project/klp/docs/schema"
)

// Every document that klp or kgr prints with --json in the guest is
// validated against its schema (docs/schema) when the command returns:
// runCred records the verdict, and the runner reports the scenario's
// verdicts as "json-schema" checks when the scenario ends, one FAIL per
// invalid document (naming the command, the document and every violation)
// and one PASS counting the valid ones.

// docVerdict is what the schema said about one command's stdout.
type docVerdict struct {
	cmd string // the command line
	doc string // the document, "" if none is known for the command
	err error  // nil: valid
}

var verdicts struct {
	sync.Mutex
	list []docVerdict
}

// checkOutput validates the stdout of a klp or kgr command that was given
// --json. A command that prints nothing (one that failed before it had a
// document, as status and info do) has nothing to validate. It returns
// false when there was nothing to record.
func checkOutput(argv []string, stdout string) (docVerdict, bool) {
	if len(argv) == 0 || (argv[0] != "/bin/klp" && argv[0] != "/bin/kgr") || !slices.Contains(argv[1:], "--json") || stdout == "" {
		return docVerdict{}, false
	}
	v := docVerdict{cmd: strings.Join(argv, " ")}
	v.doc, v.err = schema.ValidateOutput(argv[1:], []byte(stdout))
	return v, true
}

// recordOutput records the verdict on a command's stdout for the scenario's
// report.
func recordOutput(argv []string, stdout string) {
	if v, ok := checkOutput(argv, stdout); ok {
		verdicts.Lock()
		verdicts.list = append(verdicts.list, v)
		verdicts.Unlock()
	}
}

// reportDocuments reports the verdicts recorded since the last call.
func (r *runner) reportDocuments() {
	verdicts.Lock()
	list := verdicts.list
	verdicts.list = nil
	verdicts.Unlock()
	valid := map[string]int{}
	for _, v := range list {
		if v.err != nil {
			r.fail("json-schema", "%s: %v", v.cmd, v.err)
			continue
		}
		valid[v.doc]++
	}
	if len(valid) == 0 {
		return
	}
	var counts []string
	n := 0
	for doc, k := range valid {
		counts = append(counts, fmt.Sprintf("%s %d", doc, k))
		n += k
	}
	sort.Strings(counts)
	r.pass("json-schema", "%d document(s) valid against docs/schema: %s", n, strings.Join(counts, ", "))
}
