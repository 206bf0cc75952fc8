package modinfo_test

import (
	"fmt"
	"log"

	"github.com/klp-project/klp/modinfo"
)

func Example() {
	m, err := modinfo.Open("testdata/klp_vmlinux.ko.xz")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s, %s), livepatch: %v\n", m.Name, m.Machine, m.Compression, m.Livepatch)
	fmt.Printf("vermagic: %q\n", m.Vermagic)
	if err := m.RequireLivepatch(); err != nil {
		log.Fatal(err)
	}
	for _, fn := range m.Targets.Functions {
		fmt.Printf("replaces %s/%s (sysfs %s)\n", fn.Object, fn.Function, fn.SysfsName())
	}
	// Output:
	// klp_vmlinux (x86_64, xz), livepatch: true
	// vermagic: "6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions "
	// replaces vmlinux/cmdline_proc_show (sysfs cmdline_proc_show,1)
	// replaces vmlinux/version_proc_show (sysfs version_proc_show,2)
}
