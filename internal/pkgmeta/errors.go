package pkgmeta

import "errors"

var (
	// ErrModuleNotFound means no file of the module was found in the
	// module directories or klp's and kpatch's stores.
	ErrModuleNotFound = errors.New("module file not found")
	// ErrNotOwned means the module file belongs to no installed package:
	// it was built locally, or its package was removed while the module
	// stayed loaded.
	ErrNotOwned = errors.New("no installed package owns the module file")
	// ErrNoPackageManager means neither rpm nor dpkg is installed.
	ErrNoPackageManager = errors.New("neither rpm nor dpkg is installed")
	// ErrToolMissing is matched by every [*ToolError].
	ErrToolMissing = errors.New("program not installed")
	// ErrNoPreviousVersion means the repositories hold no version of the
	// package older than the installed one.
	ErrNoPreviousVersion = errors.New("no previous version available")
)

// ToolError reports a program that is needed but not installed. It matches
// [ErrToolMissing] with [errors.Is].
type ToolError struct {
	// Name is the missing program, e.g. "zypper".
	Name string
	// Purpose says what it was needed for, e.g. "to list package versions".
	Purpose string
}

func (e *ToolError) Error() string {
	msg := e.Name + " is not installed"
	if e.Purpose != "" {
		msg += "; it is needed " + e.Purpose
	}
	return msg
}

// Is makes errors.Is(err, ErrToolMissing) true.
func (e *ToolError) Is(target error) bool { return target == ErrToolMissing }
