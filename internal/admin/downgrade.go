package admin

import (
	"fmt"
	"io"
)

// Downgrade is a downgrade of the active patch, planned.
type Downgrade struct {
	// Patch is the active patch being downgraded.
	Patch string
	Plan  *DowngradePlan
	// Notes are what the package manager's answers left unsaid.
	Notes []string
}

// PlanDowngrade finds the active patch, the package that owns its module and
// the older version to install. Nothing is changed. The plan may be
// returned with an error when the package manager is the problem, so that
// the caller can say what would have run.
func (c *Changer) PlanDowngrade(dg Downgrader, nonInteractive bool) (*Downgrade, error) {
	patch, err := c.ActivePatch()
	if err != nil {
		return nil, err
	}
	d := &Downgrade{Patch: patch}
	plan, notes, err := dg.PlanDowngrade(patch, nonInteractive)
	d.Notes = notes
	if err != nil {
		return d, fmt.Errorf("downgrade %s: %w", patch, err)
	}
	d.Plan = plan
	return d, nil
}

// RunDowngrade runs the planned command with the given streams, as root.
// The notes report informational exit statuses that still mean success.
func (c *Changer) RunDowngrade(dg Downgrader, d *Downgrade, stdin io.Reader, stdout, stderr io.Writer) ([]string, error) {
	if c.cfg.Euid != 0 {
		return nil, fmt.Errorf("downgrade %s: root privileges are needed to run %s", d.Patch, d.Plan.Command[0])
	}
	notes, err := dg.RunDowngrade(d.Plan, stdin, stdout, stderr)
	if err != nil {
		return notes, fmt.Errorf("downgrade %s: %w", d.Patch, err)
	}
	return notes, nil
}
