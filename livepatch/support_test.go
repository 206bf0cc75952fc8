package livepatch

import (
	"path/filepath"
	"testing"
)

func TestDisableTaints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, archive, evidence string
	}{
		{"sle-both", "-- sys/kernel/supported --\nYes\n-- proc/sys/kernel/unsupported --\n2\n", "sys/kernel/supported"},
		{"sysctl-only", "-- proc/sys/kernel/unsupported --\n0\n", "proc/sys/kernel/unsupported"},
		{"upstream", "-- sys/kernel/livepatch/ --\n-- proc/sys/kernel/tainted --\n0\n", ""},
		// A kernel named like SUSE's without the facility's files is not
		// taken for one: the name proves nothing.
		{"name-only", "-- proc/sys/kernel/osrelease --\n6.4.0-150600.23.7-default\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, root := archiveFS(t, tc.archive)
			got, taints := fs.DisableTaints()
			if taints != (tc.evidence != "") {
				t.Errorf("DisableTaints() = %q, %v; want taints %v", got, taints, tc.evidence != "")
			}
			want := ""
			if tc.evidence != "" {
				want = filepath.Join(root, tc.evidence)
			}
			if got != want {
				t.Errorf("evidence = %q, want %q", got, want)
			}
		})
	}
}
