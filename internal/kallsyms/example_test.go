package kallsyms_test

import (
	"fmt"
	"strings"

	"github.com/klp-project/klp/internal/kallsyms"
)

func ExampleScan() {
	// In klp the reader is <procfs root>/kallsyms.
	const procKallsyms = "0000000000000000 t version_proc_show\n" +
		"0000000000000000 t version_proc_show\n" +
		"0000000000000000 t klp_target_value\t[klp_target]\n"
	res, err := kallsyms.Scan(strings.NewReader(procKallsyms), []kallsyms.Key{
		{Object: kallsyms.Vmlinux, Name: "version_proc_show"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Count(kallsyms.Vmlinux, "version_proc_show"), res.AddressesHidden)
	fmt.Println(res.Resolve(kallsyms.Vmlinux, "version_proc_show", 0))
	fmt.Println(res.Resolve(kallsyms.Vmlinux, "version_proc_show", 2))
	// Output:
	// 2 true
	// unresolvable ambiguity for symbol: "version_proc_show" in object "vmlinux" occurs 2 times, sympos needed
	// <nil>
}
