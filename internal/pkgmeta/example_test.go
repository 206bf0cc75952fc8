package pkgmeta_test

import (
	"fmt"

	"github.com/klp-project/klp/internal/pkgmeta"
)

// The changelog of a SUSE live patch package names the CVEs it fixes; the
// bug references of entries without a CVE are the other fixes.
func ExampleParseRPMChangelog() {
	cl := pkgmeta.ParseRPMChangelog(`* Thu Mar 09 2023 nstange@suse.de
- Fix for CVE-2022-2588 (bsc#1202488)
- Fix for CVE-2023-0266 (bsc#1207190)
- Reduce spurious warnings on module load (bsc#1205999)
`)
	fmt.Println(cl.CVEs)
	fmt.Println(cl.Bugs)
	// Output:
	// [CVE-2023-0266 CVE-2022-2588]
	// [bsc#1205999]
}

// Editions compare the way rpm and zypper compare them, not as strings.
func ExampleCompareEVR() {
	installed := pkgmeta.ParseEVR("10-150400.2.1")
	for _, e := range []string{"9-150400.2.1", "10-150400.2.1", "10~rc1-1"} {
		fmt.Println(e, pkgmeta.CompareEVR(pkgmeta.ParseEVR(e), installed))
	}
	// Output:
	// 9-150400.2.1 -1
	// 10-150400.2.1 0
	// 10~rc1-1 -1
}
