package admin

import (
	"testing"

	"github.com/klp-project/klp/internal/pkgmeta"
)

func TestPackageInfoLists(t *testing.T) {
	t.Parallel()
	// An initial patch has no CVEs and no bugs: the lists are empty, not
	// nil, so that its JSON says [] (report copies them as they are).
	pi := toPackageInfo(&pkgmeta.Info{Package: pkgmeta.Package{Manager: pkgmeta.Dpkg, Name: "lp", Version: "1:1-1", Arch: "amd64"}})
	if pi.CVEs == nil || pi.Bugs == nil || pi.Full != "lp_1-1_amd64" || pi.Key() != "DEB" {
		t.Errorf("toPackageInfo = %+v", pi)
	}
	if toPackageInfo(nil) != nil {
		t.Error("nil info gave a package")
	}
}
