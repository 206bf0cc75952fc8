package pkgmeta

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Detail says how much [Source.Describe] finds out.
type Detail int

const (
	// DetailChangelog finds the package, its CVEs and bug fixes (klp -v).
	DetailChangelog Detail = 1
	// DetailStatus also finds the expiration date and update status
	// (klp -vv), which ask the repositories and are slower.
	DetailStatus Detail = 2
)

// Info describes the package of a loaded patch module.
type Info struct {
	Package
	// File is the module file the package owns.
	File string
	Changelog
	// Expiration is the end of support (YYYY-MM-DD) from the lifecycle
	// data, "" when unknown. Only with [DetailStatus].
	Expiration string
	// Update is "up to date", "update available (EDITION)" or
	// "unknown (REASON)". Only with [DetailStatus].
	Update string
}

// FindPackage returns the installed package that owns the file of the
// loaded module, and the file. Errors: [ErrModuleNotFound],
// [ErrNotOwned], [ErrNoPackageManager], or a failure to read the kernel
// release or run rpm or dpkg.
func (s *Source) FindPackage(ctx context.Context, module string) (*Package, string, []string, error) {
	file, notes, err := s.FindModule(module)
	if err != nil {
		return nil, "", notes, err
	}
	pkg, err := s.Owner(ctx, file)
	if err != nil {
		return nil, file, notes, err
	}
	return pkg, file, notes, nil
}

// Describe returns what the package manager knows about the loaded module,
// or nil when no package owns it: SUSE's klp then leaves out the RPM, CVE
// and bug fix lines. Missing programs and unreadable
// data are reported as notes and leave the information out; they are not
// errors, because klp patches -v must still list the patches. An error
// means a query failed, and comes with whatever was found before it.
func (s *Source) Describe(ctx context.Context, module string, detail Detail) (*Info, []string, error) {
	// Without the kernel release no module can be found. The note is the
	// same for every patch, so the caller shows it once.
	if _, err := s.KernelRelease(); err != nil {
		return nil, []string{fmt.Sprintf("%v; package information is not shown", err)}, nil
	}
	pkg, file, notes, err := s.FindPackage(ctx, module)
	switch {
	case err == nil:
	case errors.Is(err, ErrModuleNotFound), errors.Is(err, ErrNotOwned):
		// Not a packaged patch (built locally, loaded by hand, or its
		// package removed). SUSE prints no package lines then.
		return nil, notes, nil
	case errors.Is(err, ErrNoPackageManager):
		return nil, append(notes, "neither rpm nor dpkg is installed; package, CVE and bug fix information is not shown"), nil
	default:
		return nil, notes, err
	}

	info := &Info{Package: *pkg, File: file}
	if detail < DetailChangelog {
		return info, notes, nil
	}
	cl, err := s.Changelog(ctx, *pkg)
	if err != nil {
		return info, notes, err
	}
	info.Changelog = cl
	if detail < DetailStatus {
		return info, notes, nil
	}

	date, found, lcNotes := s.Expiration(*pkg)
	info.Expiration = date
	notes = append(notes, lcNotes...)
	// Lifecycle data is SUSE's; on Debian its absence is normal.
	if !found && pkg.Manager == RPM {
		notes = append(notes, fmt.Sprintf("no lifecycle data in %s (package lifecycle-data-sle-module-live-patching); expiration dates are unknown",
			strings.Join(s.cfg.LifecycleDirs, ", ")))
	}
	upd, updNotes := s.UpdateStatus(ctx, *pkg)
	info.Update = upd
	notes = append(notes, updNotes...)
	return info, notes, nil
}

// Plan is a downgrade: the installed package, the version it goes back to
// and the command that does it.
type Plan struct {
	// Package is the installed package.
	Package Package
	// From is its edition; To the older edition to install.
	From, To string
	// Command is the program and its arguments, e.g.
	// ["zypper", "in", "--oldpackage", "NAME=2-2.1"].
	Command []string
}

// PlanDowngrade finds the newest version of pkg older than the installed
// one and the command that installs it. Errors: a [*ToolError] when zypper
// (or apt-cache and apt-get) is missing, [ErrNoPreviousVersion] when the
// repositories have no older version, or a failed query.
func (s *Source) PlanDowngrade(ctx context.Context, pkg Package, nonInteractive bool) (*Plan, error) {
	vs, err := s.Versions(ctx, pkg)
	if err != nil {
		return nil, err
	}
	from := pkg.Edition()
	prev, ok := Previous(pkg.Manager, from, vs)
	if !ok {
		return nil, fmt.Errorf("%w: the repositories have no version of %s older than %s%s",
			ErrNoPreviousVersion, pkg.Name, from, listEditions(vs))
	}
	cmd := DowngradeCommand(pkg, prev.Edition, nonInteractive)
	if _, err := s.cfg.Runner.LookPath(cmd[0]); err != nil {
		return nil, &ToolError{Name: cmd[0], Purpose: "to install " + pkg.Name + " " + prev.Edition}
	}
	return &Plan{Package: pkg, From: from, To: prev.Edition, Command: cmd}, nil
}

func listEditions(vs []Available) string {
	if len(vs) == 0 {
		return " (it has no versions at all)"
	}
	var es []string
	for _, v := range vs {
		es = append(es, v.Edition)
	}
	return " (versions found: " + strings.Join(es, ", ") + ")"
}

// zypper's exit codes that follow a successful installation: 102
// ZYPPER_EXIT_INF_REBOOT_NEEDED and 103 ZYPPER_EXIT_INF_RESTART_NEEDED
// (zypper updated itself). Others, 106 (a repository was skipped) and 107
// (an rpm scriptlet failed; for a live patch that is the one loading the
// module) included, mean the downgrade cannot be trusted to have happened.
var zypperSuccess = map[int]string{
	102: "zypper reports that a reboot is needed",
	103: "zypper reports that it updated itself and must be run again for further changes",
}

// Execute runs the plan's command with the user's streams attached. It
// returns an [*ExitError] carrying the exit status when the command fails.
// Notes report informational exit statuses that still mean success.
func (s *Source) Execute(ctx context.Context, plan *Plan, stdio Stdio) ([]string, error) {
	if plan == nil || len(plan.Command) == 0 {
		return nil, errors.New("run downgrade: empty command")
	}
	err := s.cfg.Runner.Attach(ctx, stdio, plan.Command[0], plan.Command[1:]...)
	if code, ok := exitCode(err); ok && plan.Command[0] == "zypper" {
		if note, ok := zypperSuccess[code]; ok {
			return []string{fmt.Sprintf("%s (exit status %d)", note, code)}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", strings.Join(plan.Command, " "), err)
	}
	return nil, nil
}
