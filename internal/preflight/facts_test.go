package preflight

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The checks are functions of the facts: these tests give them literal
// facts, as gather would have read them from a kernel at the usual paths,
// and compare the whole Check, so that any change to a rule or its words
// shows.

// errIO stands for a read error that is neither "does not exist" nor
// "permission denied".
var errIO = errors.New("input/output error")

// val is a file read without error.
func val(path, v string) reading[string] { return reading[string]{path: path, v: v} }

// bad is a file whose read failed.
func bad[T any](path string, err error) reading[T] { return reading[T]{path: path, err: err} }

// factCase is one outcome of a check.
type factCase struct {
	name string
	f    facts
	want Check // ID and Title are Run's to set
}

// testCheck runs check on each case's facts and compares the whole Check.
func testCheck(t *testing.T, check func(*facts) Check, cases []factCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := check(&tc.f)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("unexpected check (-want +got):\n%s", diff)
			}
			if (got.Status == Pass) != (got.Fix == "") {
				t.Errorf("%s with fix %q: a fix goes with warn, fail and skip only", got.Status, got.Fix)
			}
		})
	}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
