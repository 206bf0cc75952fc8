package kmod

import "github.com/klp-project/klp/kernel"

// Syscalls is the seam between this package and the kernel's module
// syscalls: [kernel.ModuleSyscalls], reached through a [kernel.Live]
// handle. internal/fakekernel implements it and reacts like the kernel.
type Syscalls = kernel.ModuleSyscalls
