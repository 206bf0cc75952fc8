package admin

import (
	"context"
	"errors"
	"os"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// Exit statuses. The SUSE-compatible commands use only 0 and 1 (klp(8),
// kgr(8)), and so does a usage error everywhere, because scripts written for
// SUSE's klp test for 1. The commands that change live patches add the
// others (docs/json.md, "Exit status").
const (
	ExitOK          = 0
	ExitError       = 1
	ExitStalled     = 3   // the transition did not complete in time
	ExitUnsupported = 4   // the kernel has no live patching
	ExitPermission  = 5   // not root, lockdown, signature enforcement
	ExitInterrupted = 130 // SIGINT or SIGTERM (128 + SIGINT, as shells report it)
)

// ExitCode maps the error of a change to its exit status: the one mapping
// klp has.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, livepatch.ErrStalled):
		return ExitStalled
	case errors.Is(err, kernel.ErrNotSupported):
		return ExitUnsupported
	case errors.Is(err, kernel.ErrPermission), errors.Is(err, kmod.ErrSignature), errors.Is(err, os.ErrPermission):
		return ExitPermission
	}
	return ExitError
}
