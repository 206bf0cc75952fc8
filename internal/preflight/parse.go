package preflight

import (
	"bufio"
	"io"
	"strings"

	"github.com/klp-project/klp/internal/kallsyms"
)

// The parser of available_filter_functions (package ftrace parses the
// other tracing files). It takes what the kernel prints and skips lines it
// does not understand; only a read error is returned.

// parseFilterFunctions reads available_filter_functions: "name" for the
// core kernel, "name [module]" for a module; only wanted names are kept.
func parseFilterFunctions(rd io.Reader, wantNames map[string]bool) (map[objFunc]bool, error) {
	set := map[objFunc]bool{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !wantNames[f[0]] {
			continue
		}
		obj := kallsyms.Vmlinux
		if len(f) > 1 && strings.HasPrefix(f[1], "[") && strings.HasSuffix(f[1], "]") {
			obj = strings.Trim(f[1], "[]")
		}
		set[objFunc{obj, f[0]}] = true
	}
	return set, sc.Err()
}
