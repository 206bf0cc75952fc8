package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/modinfo"
)

func newInfoCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "info FILE.ko|NAME",
		Short: "Describe a live patch module file: name, modinfo, signature, targets",
		Long: `Describe a kernel module file from its contents alone, the same on every
machine: the module name, its .modinfo keys (vermagic, livepatch, ...), its
signature (signer and hash algorithm; whether the kernel trusts the key is
not something the file can say), and for a live patch the objects and
functions it replaces, as /sys/kernel/livepatch will name them once it is
loaded (function,sympos). Where the file does not tell (functions built at
run time, no symbol table), klp says so rather than guessing.

The file may be compressed (xz, zstd, gzip). NAME is a patch installed for
the running kernel (klp install). Whether this kernel would accept the
module is 'klp preflight'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return infoRun(opts, args[0])
		},
	}
}

// moduleFile turns a FILE.ko|NAME argument of verb into a module file: an
// argument with a '/' or ".ko" is a path, read as given (so that a missing
// file is reported by the open that fails); a bare name is looked up among
// the patches installed for the running kernel, as klp load does.
func (o *rootOptions) moduleFile(sys *admin.System, verb, arg string) (string, error) {
	if strings.Contains(arg, "/") || strings.Contains(arg, ".ko") {
		return arg, nil
	}
	return sys.ResolveModule(o.installed(), verb, arg)
}

// inspectModule parses a module file, through the test hook when set.
func (o *rootOptions) inspectModule(path string) (*modinfo.Module, error) {
	if o.env.Inspect != nil {
		return o.env.Inspect(path)
	}
	return modinfo.Open(path)
}

func infoRun(opts *rootOptions, arg string) error {
	path := arg
	if !strings.Contains(arg, "/") && !strings.Contains(arg, ".ko") {
		// Only a NAME needs the kernel: its release says which
		// installed file.
		sys, err := opts.system()
		if err != nil {
			return &exitError{code: ExitError, msg: "info: " + err.Error()}
		}
		if path, err = opts.moduleFile(sys, "info", arg); err != nil {
			return &exitError{code: ExitError, msg: "info: " + err.Error()}
		}
	}
	mod, err := opts.inspectModule(path)
	if err != nil {
		return &exitError{code: ExitError, msg: "info: " + err.Error()}
	}
	if opts.json {
		return report.Write(opts.env.IO.Out, report.NewInfo(path, mod))
	}
	printInfo(opts.env.IO.Out, path, mod)
	return nil
}

var nameSources = map[modinfo.NameSource]string{
	modinfo.NameFromThisModule: "from .gnu.linkonce.this_module, as the kernel reads it",
	modinfo.NameFromModinfo:    "from name= in .modinfo",
}

func infoYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printInfo writes the text form of klp info.
func printInfo(w io.Writer, path string, m *modinfo.Module) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	name := m.Name
	if name == "" {
		name = "(unknown: neither .gnu.linkonce.this_module nor .modinfo names it)"
	} else if src, ok := nameSources[m.NameSource]; ok {
		name += " (" + src + ")"
	}
	fmt.Fprintf(tw, "name:\t%s\n", printable(name))
	fmt.Fprintf(tw, "file:\t%s\n", printable(path))
	size := strconv.FormatInt(m.Size, 10) + " bytes"
	if m.Compression != "none" {
		size += " decompressed"
	}
	fmt.Fprintf(tw, "compression:\t%s (%s)\n", m.Compression, size)
	fmt.Fprintf(tw, "machine:\t%s (%s, %s)\n", m.Machine, m.Class, m.ByteOrder)
	fmt.Fprintf(tw, "livepatch:\t%s\n", infoYesNo(m.Livepatch))
	vm := strings.TrimSpace(m.Vermagic)
	if vm == "" {
		vm = "(none: the kernel refuses a module without vermagic)"
	}
	fmt.Fprintf(tw, "vermagic:\t%s\n", printable(vm))
	fmt.Fprintf(tw, "signature:\t%s\n", printable(signatureLine(m.Signature)))
	tw.Flush()

	fmt.Fprintln(w, "modinfo:")
	if len(m.Info) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	width := 0
	for _, kv := range m.Info {
		width = max(width, len(printable(kv.Key)))
	}
	for _, kv := range m.Info {
		// Values keep their inner spacing; trailing blanks (vermagic ends
		// with one) are dropped so that lines do not end in white space.
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s  %s", width, printable(kv.Key), printable(kv.Value)), " \t"))
	}

	printTargets(w, m)
	if len(m.Notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range m.Notes {
			fmt.Fprintf(w, "  - %s\n", printable(n))
		}
	}
}

// signatureLine describes the appended signature in one line.
func signatureLine(s *modinfo.Signature) string {
	if s == nil {
		return "none (unsigned)"
	}
	parts := []string{s.IDType}
	if s.Signer != "" {
		parts = append(parts, "signer "+strconv.Quote(s.Signer))
	}
	if s.KeyID != "" {
		parts = append(parts, "key "+s.KeyID)
	}
	if s.HashAlgorithm != "" {
		alg := s.HashAlgorithm
		if s.SignatureAlgorithm != "" {
			alg += " with " + s.SignatureAlgorithm
		}
		parts = append(parts, alg)
	}
	parts = append(parts, strconv.Itoa(s.Length)+" bytes")
	line := strings.Join(parts, ", ")
	if s.Undetermined != "" {
		line += "; undetermined: " + s.Undetermined
	}
	return line
}

// printable escapes control characters and invalid UTF-8: text read from a
// module file (or derived from it) must not reach a terminal as escape
// sequences.
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// printTargets writes what a live patch replaces.
func printTargets(w io.Writer, m *modinfo.Module) {
	t := m.Targets
	if t == nil {
		fmt.Fprintln(w, "targets: none (not a livepatch module)")
		return
	}
	fmt.Fprintln(w, "targets:")
	replace := "undetermined (no static struct klp_patch in the file)"
	switch {
	case t.ReplaceSet != nil && *t.ReplaceSet > 1:
		// Only an unsigned replace_set holds more than a bool.
		replace = fmt.Sprintf("replace set %d (as initialised in the file; a module may change it in its init function)", *t.ReplaceSet)
	case t.Replace != nil:
		replace = infoYesNo(*t.Replace) + " (as initialised in the file; a module may change it in its init function)"
	}
	fmt.Fprintf(w, "  atomic replace: %s\n", replace)
	if len(t.States) > 0 {
		var ss []string
		for _, st := range t.States {
			ss = append(ss, fmt.Sprintf("%d (version %d)", st.ID, st.Version))
		}
		fmt.Fprintf(w, "  system states: %s\n", strings.Join(ss, ", "))
	}
	var objs []string
	for _, o := range t.Objects {
		objs = append(objs, o.Name)
	}
	if len(objs) > 0 {
		fmt.Fprintf(w, "  objects: %s\n", printable(strings.Join(objs, ", ")))
	}
	if len(t.Functions) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  OBJECT\tFUNCTION\tSOURCE")
		for _, f := range t.Functions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(f.Object), printable(f.SysfsName()), f.Source)
		}
		tw.Flush()
	}
	if t.Undetermined != "" {
		what := "functions"
		if len(t.Functions) > 0 {
			what = "further functions"
		}
		fmt.Fprintf(w, "  %s: undetermined: %s\n", what, printable(t.Undetermined))
	}
	if len(t.Symbols) > 0 {
		fmt.Fprintln(w, "  klp symbols (resolved by the kernel when the object is loaded):")
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, s := range t.Symbols {
			fmt.Fprintf(tw, "    %s\t%s,%d\n", printable(s.Object), printable(s.Name), s.Sympos)
		}
		tw.Flush()
	}
	if len(t.Relocations) > 0 {
		fmt.Fprintln(w, "  klp relocation sections:")
		for _, r := range t.Relocations {
			fmt.Fprintf(w, "    %s -> %s (%d)\n", printable(r.Section), printable(r.Applies), r.Count)
		}
	}
	for _, n := range t.Notes {
		fmt.Fprintf(w, "  note: %s\n", printable(n))
	}
}
