package schema_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/klp-project/klp/docs/schema"
)

// The headings of docs/json.md whose examples are objects inside a
// document, not documents.
var objectHeadings = []string{"### Transition", "### Other users of a patched function"}

var firstCode = regexp.MustCompile("`([^`]+)`")

// TestDocsExamples validates every ```json example of docs/json.md against
// the document its section describes: the first command quoted in the
// heading (for example "`klp load --all --json`") names it.
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile("../json.md")
	if err != nil {
		t.Fatal(err)
	}
	heading, n := "", 0
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "### ") {
			heading = l
		}
		if strings.TrimSpace(l) != "```json" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		}
		example := strings.Join(lines[start:i], "\n")
		if slices.Contains(objectHeadings, heading) {
			continue
		}
		m := firstCode.FindStringSubmatch(heading)
		if m == nil {
			t.Errorf("json.md:%d: heading %q quotes no command", start, heading)
			continue
		}
		args := strings.Fields(m[1])
		if args[0] == "klp" || args[0] == "kgr" {
			args = args[1:]
		}
		if _, ok := schema.DocumentFor(args); !ok {
			t.Errorf("json.md:%d: no document for the heading %q", start, heading)
			continue
		}
		if doc, err := schema.ValidateOutput(args, []byte(example)); err != nil {
			t.Errorf("json.md:%d: the example of %q (%s): %v", start, heading, doc, err)
		}
		n++
	}
	if n < 10 {
		t.Errorf("validated %d examples of docs/json.md; expected one per document", n)
	}
}
