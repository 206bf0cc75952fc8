// Package ftrace reads who else uses a kernel function's entry: the users
// of its ftrace call site (tracefs's enabled_functions), the kprobes on it
// (debugfs's kprobes/list), the BPF programs attached to it (through the
// [kernel.Handle]'s [kernel.BPFReader]), and fail_function's injections.
//
// A live patch is one such user: it redirects the function through its
// call site (an IPMODIFY ftrace user). The others either stop it from
// loading (another IPMODIFY user: a kprobe with a post_handler,
// fail_function; the kernel answers EBUSY), run beside it (an fentry or
// fexit program, a kprobe with no post_handler), or win over it without a
// word: a BPF fmod_ret or LSM program, or a kprobe program that calls
// bpf_override_return(), makes callers get the program's value, and the
// patched code never runs. [Classify] tells these apart; docs/kernel-notes.md
// records what Debian's 6.1 and 6.12 show.
//
// Parsers take an io.Reader ([ParseEnabledFunctions], [ParseKprobes]) and
// are fuzzed; [FS] reads the files through a [kernel.Handle].
package ftrace
