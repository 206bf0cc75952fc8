package cli

import (
	"fmt"

	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

// systemStatus is what status and check report.
type systemStatus struct {
	iface      livepatch.Interface
	inProgress bool
	transition *livepatch.Transition
	sysPath    string // the directory whose absence means "not supported"
}

func readStatus(fs livepatch.FS) (systemStatus, error) {
	st := systemStatus{iface: fs.Interface(), sysPath: fs.LivepatchPath()}
	switch st.iface {
	case livepatch.InterfaceLivepatch:
		patches, err := fs.Patches()
		if err != nil {
			return st, err
		}
		st.transition = livepatch.TransitionOf(patches)
		st.inProgress = st.transition != nil
	case livepatch.InterfaceKGraft:
		ip, err := fs.KGraftInProgress()
		if err != nil {
			return st, err
		}
		st.inProgress = ip
		if ip {
			st.transition = &livepatch.Transition{Target: livepatch.StatePatched}
		}
	}
	return st, nil
}

func (st systemStatus) word() string {
	if st.inProgress {
		return "in_progress"
	}
	return "ready"
}

type jsonStatus struct {
	SchemaVersion      int             `json:"schema_version"`
	Status             string          `json:"status"`
	Interface          string          `json:"interface"`
	LivepatchSupported bool            `json:"livepatch_supported"`
	Transition         *jsonTransition `json:"transition"`
}

func (st systemStatus) json() jsonStatus {
	return jsonStatus{
		SchemaVersion:      SchemaVersion,
		Status:             st.word(),
		Interface:          string(st.iface),
		LivepatchSupported: st.iface != livepatch.InterfaceNone,
		Transition:         toJSONTransition(st.transition),
	}
}

func toJSONTransition(t *livepatch.Transition) *jsonTransition {
	if t == nil {
		return nil
	}
	jt := &jsonTransition{Target: t.Target.String()}
	if t.Patch != "" {
		name := t.Patch
		jt.Patch = &name
	}
	return jt
}

func (st systemStatus) printVerbose(opts *rootOptions) {
	out := opts.env.IO.Out
	switch {
	case st.iface == livepatch.InterfaceNone:
		fmt.Fprintf(out, "kernel live patching is not supported: %s does not exist\n", st.sysPath)
	case st.transition != nil && st.transition.Patch != "":
		fmt.Fprintf(out, "patch %s is %s\n", st.transition.Patch, st.transition.Direction())
	case st.inProgress:
		fmt.Fprintln(out, "a kGraft patch is being applied")
	}
}

// currentStatus reads the status through the configured roots.
func (o *rootOptions) currentStatus() (systemStatus, error) {
	fs, err := o.fs()
	if err != nil {
		return systemStatus{}, err
	}
	return readStatus(fs)
}

func newStatusCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Display the overall status of kernel live patching (ready or in_progress)",
		Long: `Display the overall status of kernel live patching: "ready" when no patch is
in transition, "in_progress" while one is. A kernel without live patching
support is "ready"; with -v, klp says that it is not supported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := opts.currentStatus()
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(opts.env.IO.Out, st.json())
			}
			fmt.Fprintln(opts.env.IO.Out, st.word())
			if opts.verbose > 0 {
				st.printVerbose(opts)
			}
			return nil
		},
	}
}

func newCheckCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Indicate the overall kernel live patching status with exit code",
		Long: `Indicate the overall kernel live patching status with the exit code, for
scripts: 0 when the system is ready, 1 when patching is in progress (and 1
with a message on stderr when the state cannot be read). It prints nothing
unless -v or --json is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := opts.currentStatus()
			if err != nil {
				return err
			}
			switch {
			case opts.json:
				if err := writeJSON(opts.env.IO.Out, st.json()); err != nil {
					return err
				}
			case opts.verbose > 0:
				fmt.Fprintln(opts.env.IO.Out, st.word())
				st.printVerbose(opts)
			}
			if st.inProgress {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
}
