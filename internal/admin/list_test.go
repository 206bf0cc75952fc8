package admin

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/livepatch"
)

// TestProvidersOrder: klp list shows the patched functions by object,
// then name, then position, whatever order the patches list them in; a
// function two patches change is one row naming both.
func TestProvidersOrder(t *testing.T) {
	t.Parallel()
	fn := func(name string, pos int) livepatch.Function { return livepatch.Function{Name: name, Sympos: pos} }
	patches := []livepatch.Patch{
		{Name: "p1", Enabled: true, Objects: []livepatch.Object{
			{Name: "vmlinux", Functions: []livepatch.Function{fn("z", 1), fn("a", 2), fn("a", 1)}},
			{Name: "nfsd", Functions: []livepatch.Function{fn("m", 1), fn("b", 1)}},
		}},
		{Name: "p2", Enabled: true, Objects: []livepatch.Object{
			{Name: "ext4", Functions: []livepatch.Function{fn("z", 1)}},
			{Name: "vmlinux", Functions: []livepatch.Function{fn("a", 1)}},
		}},
	}
	var got []string
	rows := map[string][]string{}
	for _, f := range providers(patches, nil) {
		row := f.Object + "/" + f.Function + "," + string(rune('0'+f.Sympos))
		got = append(got, row)
		rows[row] = f.Patches
	}
	want := []string{"ext4/z,1", "nfsd/b,1", "nfsd/m,1", "vmlinux/a,1", "vmlinux/a,2", "vmlinux/z,1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1", "p2"}, rows["vmlinux/a,1"]); diff != "" {
		t.Errorf("vmlinux/a,1's patches (-want +got):\n%s", diff)
	}
}
