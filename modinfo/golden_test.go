package modinfo_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/modinfo"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the parser's output")

// TestGolden compares what every testdata module says about itself with
// testdata/golden/<file>.json, both as a value (go-cmp) and as the exact
// JSON bytes of the module description klp info --json prints (package
// report builds it). Run with -update after a deliberate change, and
// review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ko*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata modules: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			m, err := modinfo.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			doc := report.NewModule(m)
			got, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", filepath.Base(file)+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantJSON, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			var want report.Module
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, doc); diff != "" {
				t.Errorf("unexpected diff (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got, wantJSON) {
				t.Errorf("JSON differs from %s:\n%s", golden, got)
			}
		})
	}
}
