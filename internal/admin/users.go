package admin

import (
	"context"
	"fmt"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/livepatch"
)

// FunctionUsers are the users of one patched function's entry other than
// live patching: BPF programs, kprobes, direct calls.
type FunctionUsers struct {
	Object, Function string
	Users            []ftrace.User
}

// Overriders returns the users that win, or may win, over the patch.
func (f FunctionUsers) Overriders() []ftrace.User {
	var out []ftrace.User
	for _, u := range f.Users {
		if u.Effect == ftrace.Overrides || u.Effect == ftrace.MayOverride {
			out = append(out, u)
		}
	}
	return out
}

// OtherUsers reads who else uses the entry of the patched functions (what
// [ftrace.State.Users] finds) and returns the functions that have such
// users. The error says why nothing could be read: tracefs's
// enabled_functions and the BPF programs are root's, and the BPF programs
// are the running kernel's only.
func (s *System) OtherUsers(funcs []ftrace.Func) ([]FunctionUsers, error) {
	want := map[string]bool{}
	for _, f := range funcs {
		want[f.Name] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	st := ftrace.New(s.K).Read(context.Background(), func(n string) bool { return want[n] })
	if st.EnabledErr != nil && st.BPFErr != nil {
		return nil, fmt.Errorf("read the other users of the patched functions: %w; %w", st.EnabledErr, st.BPFErr)
	}
	var out []FunctionUsers
	seen := map[ftrace.Func]bool{}
	for _, f := range funcs {
		if seen[f] {
			continue
		}
		seen[f] = true
		if users := st.Users(f, true); len(users) > 0 {
			out = append(out, FunctionUsers{Object: f.Object, Function: f.Name, Users: users})
		}
	}
	return out, nil
}

// patchFuncs lists the functions of patches.
func patchFuncs(patches ...livepatch.Patch) []ftrace.Func {
	var out []ftrace.Func
	for _, p := range patches {
		for _, o := range p.Objects {
			for _, f := range o.Functions {
				out = append(out, ftrace.Func{Object: o.Name, Name: f.Name})
			}
		}
	}
	return out
}
