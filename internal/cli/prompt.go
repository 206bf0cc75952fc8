package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/klp-project/klp/internal/admin"
)

// confirm asks a yes/no question and reads one bounded line; anything but
// y or yes is no.
func confirm(in io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	answer, _ := readAnswer(in)
	return isYes(answer)
}

// readAnswer reads one line, one byte at a time: a buffered read would
// swallow input meant for the command run next (zypper asks its own
// question when -n is not given).
func readAnswer(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	// Bounded, so that a reader returning (0, nil) cannot spin forever.
	for range 4096 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSpace(b.String()), nil
			}
			if b.Len() < 1024 {
				b.WriteByte(buf[0])
			}
		}
		if err != nil {
			return strings.TrimSpace(b.String()), err
		}
	}
	return strings.TrimSpace(b.String()), nil
}

func isYes(s string) bool {
	s = strings.ToLower(s)
	return s == "y" || s == "yes"
}

// confirmTaint warns, on a SUSE kernel, that the disable about to be made
// sets the kernel's NO_SUPPORT taint, and asks for confirmation unless yes.
// Without a terminal to ask on, it refuses (nothing has changed) and names
// --yes. verb is "disable" or "unload".
func confirmTaint(opts *rootOptions, plan *admin.TaintPlan, verb string, yes bool) error {
	if plan == nil {
		return nil
	}
	w := opts.env.IO.ErrOut
	what := strings.Join(plan.Patches, ", ")
	fmt.Fprintf(w, "%s: this is a SUSE kernel (%s exists): disabling live patch %s sets the kernel's NO_SUPPORT taint (N), and SUSE may then decline support for this boot.\n",
		opts.prog, printable(plan.Evidence), printable(what))
	if yes {
		return nil
	}
	if !opts.env.IO.InTTY {
		return &exitError{code: ExitError, msg: fmt.Sprintf("refusing to %s %s without confirmation: run on a terminal, or add --yes", verb, printable(what))}
	}
	if !confirm(opts.env.IO.In, w, "Disable it anyway? [y/N] ") {
		return &exitError{code: ExitError, msg: "not " + map[string]string{"disable": "disabled", "unload": "unloaded"}[verb]}
	}
	return nil
}
