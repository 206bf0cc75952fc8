package ftrace

import (
	"fmt"
	"sort"
	"strings"

	"github.com/klp-project/klp/kernel"
)

// Effect is what another user of a function's entry does to a live patch
// of that function.
type Effect string

const (
	// Overrides: the user makes callers get its own result, and the
	// patched code does not run, without any error or log line: a BPF
	// fmod_ret or LSM program, a kprobe program that calls
	// bpf_override_return().
	Overrides Effect = "overrides"
	// MayOverride: a direct call (a BPF trampoline, flag D) whose
	// programs klp could not list: an fmod_ret program among them would
	// override the patch.
	MayOverride Effect = "may_override"
	// Blocks: another user that changes the instruction pointer
	// (IPMODIFY: a kprobe with a post_handler, fail_function): the kernel
	// refuses to patch the function (EBUSY), and refuses such a user on a
	// patched function.
	Blocks Effect = "blocks"
	// Coexists: the user observes the calls (an fentry or fexit program,
	// a kprobe without a post_handler); the patched code runs.
	Coexists Effect = "coexists"
)

// The kinds of [User].
const (
	KindBPFFentry         = "bpf_fentry"
	KindBPFFexit          = "bpf_fexit"
	KindBPFFmodRet        = "bpf_fmod_ret"
	KindBPFLSM            = "bpf_lsm"
	KindBPFKprobe         = "bpf_kprobe"
	KindBPFKprobeOverride = "bpf_kprobe_override"
	KindDirect            = "direct_call"
	KindIPModify          = "ipmodify"
	KindKprobe            = "kprobe"
	KindFailFunction      = "fail_function"
)

// User is one user of a function's entry other than live patching.
type User struct {
	// Kind is one of the Kind constants.
	Kind   string
	Effect Effect
	// Program, ProgramID and LinkID name a BPF program (Kind bpf_*).
	Program           string
	ProgramID, LinkID uint32
	// Source is what showed it: the kernel file's line, or "bpf(2)".
	Source string
}

// String describes the user in a few words: "BPF fmod_ret program
// klp_e2e_fmodret (id 12, link 7)".
func (u User) String() string {
	switch u.Kind {
	case KindBPFFentry, KindBPFFexit, KindBPFFmodRet, KindBPFLSM, KindBPFKprobe, KindBPFKprobeOverride:
		kind := map[string]string{
			KindBPFFentry: "fentry", KindBPFFexit: "fexit", KindBPFFmodRet: "fmod_ret", KindBPFLSM: "LSM",
			KindBPFKprobe: "kprobe", KindBPFKprobeOverride: "kprobe (bpf_override_return)",
		}[u.Kind]
		name := u.Program
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Sprintf("BPF %s program %s (id %d, link %d)", kind, name, u.ProgramID, u.LinkID)
	case KindDirect:
		return "a direct call (BPF trampoline): " + u.Source
	case KindIPModify:
		return "an ftrace user that changes the instruction pointer: " + u.Source
	case KindKprobe:
		return "kprobe: " + u.Source
	case KindFailFunction:
		return "fail_function error injection: " + u.Source
	}
	return u.Kind + ": " + u.Source
}

// ClassifyBPF returns the kind and effect of a BPF program attached to a
// function.
func ClassifyBPF(l kernel.BPFLink) (string, Effect) {
	switch l.Attach {
	case kernel.AttachFmodRet:
		return KindBPFFmodRet, Overrides
	case kernel.AttachLSM:
		return KindBPFLSM, Overrides
	case kernel.AttachFentry:
		return KindBPFFentry, Coexists
	case kernel.AttachFexit:
		return KindBPFFexit, Coexists
	}
	if l.Override {
		return KindBPFKprobeOverride, Overrides
	}
	return KindBPFKprobe, Coexists
}

// State is what [FS.Read] read: each source with its error.
type State struct {
	EnabledPath string
	Enabled     []Entry
	EnabledErr  error

	KprobesPath string
	Kprobes     []Kprobe
	KprobesErr  error

	FailFunctions []string
	FailErr       error

	BPF    []kernel.BPFLink
	BPFErr error
}

// Users returns the users of f's entry other than live patching, the
// most harmful first; patched says that a live patch hooks f, so that its
// IPMODIFY flag is the patch's own.
func (s State) Users(f Func, patched bool) []User {
	var out []User
	var entry *Entry
	for i := range s.Enabled {
		if s.Enabled[i].Func == f {
			entry = &s.Enabled[i]
		}
	}
	bpfTrampoline := false
	if s.BPFErr == nil {
		for _, l := range s.BPF {
			if l.Function != f.Name || l.Object != f.Object {
				continue
			}
			kind, eff := ClassifyBPF(l)
			if l.UsesTrampoline() {
				bpfTrampoline = true
			}
			out = append(out, User{Kind: kind, Effect: eff, Program: l.Program, ProgramID: l.ProgramID, LinkID: l.ID, Source: "bpf(2)"})
		}
	}
	if entry != nil && entry.Has(FlagDirect) && !bpfTrampoline {
		src := fmt.Sprintf("flag D in %s", s.EnabledPath)
		if entry.Direct != "" {
			src += " (direct-->" + entry.Direct + ")"
		}
		if s.BPFErr != nil {
			src += "; BPF programs not listed: " + errText(s.BPFErr)
		}
		out = append(out, User{Kind: KindDirect, Effect: MayOverride, Source: src})
	}
	failing := false
	for _, fn := range s.FailFunctions {
		if fn == f.Name {
			failing = true
			out = append(out, User{Kind: KindFailFunction, Effect: Blocks, Source: s.failPath(fn)})
		}
	}
	if entry != nil && entry.Has(FlagIPModify) && !patched && !failing {
		out = append(out, User{Kind: KindIPModify, Effect: Blocks, Source: fmt.Sprintf("flag I in %s", s.EnabledPath)})
	}
	for _, p := range s.Kprobes {
		if p.Function != f.Name || p.Object != f.Object || p.Has("GONE") {
			continue
		}
		out = append(out, User{Kind: KindKprobe, Effect: Coexists,
			Source: strings.TrimSpace(fmt.Sprintf("%s at %s+%s %s", p.Kind(), p.Function, p.Offset, p.Flags))})
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Effect) < rank(out[j].Effect) })
	return out
}

func (s State) failPath(fn string) string { return "fail_function/" + fn }

func rank(e Effect) int {
	switch e {
	case Blocks:
		return 0
	case Overrides:
		return 1
	case MayOverride:
		return 2
	}
	return 3
}

// errText is an error's text without the path an *os.PathError adds.
func errText(err error) string { return err.Error() }
