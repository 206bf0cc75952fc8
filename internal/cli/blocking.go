package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

// blockingMode says what a blocking command lists.
type blockingMode int

const (
	klpThreads   blockingMode = iota // klp blocking, and kgr on upstream kernels
	kgrProcesses                     // SLE 12 kgr blocking: processes
	kgrThreads                       // SLE 12 kgr blocking_threads: PID and TID
)

type jsonBlocking struct {
	SchemaVersion int             `json:"schema_version"`
	Interface     string          `json:"interface"`
	Transition    *jsonTransition `json:"transition"`
	Tasks         []jsonTask      `json:"tasks"`
	Unreadable    []jsonTaskError `json:"unreadable"`
	TasksScanned  int             `json:"tasks_scanned"`
}

type jsonTask struct {
	PID          int      `json:"pid"`
	TID          int      `json:"tid"`
	Comm         string   `json:"comm"`
	Cmdline      string   `json:"cmdline"`
	KernelThread bool     `json:"kernel_thread"`
	State        string   `json:"state"`
	PatchState   int      `json:"patch_state"`
	Stack        []string `json:"stack"`
	StackError   *string  `json:"stack_error"`
}

func newJSONTask(t livepatch.Task, state livepatch.PatchState, stack []string, stackErr error) jsonTask {
	jt := jsonTask{
		PID: t.PID, TID: t.TID, Comm: t.Comm, Cmdline: t.Cmdline, KernelThread: t.KernelThread,
		State: t.State, PatchState: int(state), Stack: stack,
	}
	if stackErr != nil {
		s := stackErr.Error()
		jt.StackError = &s
	}
	return jt
}

type jsonTaskError struct {
	PID   int    `json:"pid"`
	TID   int    `json:"tid"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

func newBlockingCmd(opts *rootOptions, name string, mode blockingMode) *cobra.Command {
	short := "List process threads that are preventing live patching from finishing"
	long := `List the threads that are preventing live patching from finishing: those whose
/proc/<pid>/task/<tid>/patch_state has not reached the target state of the
patch in transition. By default just the thread ids are listed; -v adds each
process's command line ([comm] for kernel threads), a second -v adds kernel
stack traces (which need root).

Tasks whose state cannot be read (other users' tasks, when not root) are
reported on stderr and make the exit status 1, because the list is then
incomplete.`
	if opts.prog == "kgr" {
		long += `

On SLE 12 kernels with the kGraft interface, blocking lists the processes
whose /proc/<pid>/kgr_in_progress is set, and blocking_threads lists the
PID and TID of each such thread. Elsewhere both list threads, as klp does.`
	}
	if name == "blocking_threads" {
		short = "Obsolete command. Same as kgr blocking, listing PID and TID"
	}
	var why bool
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if why {
				fs, err := opts.fs()
				if err != nil {
					return err
				}
				return whyRun(opts, fs)
			}
			return blockingRun(opts, mode)
		},
	}
	if opts.prog == "klp" {
		cmd.Long += `

With --why, klp explains the stall instead: for each blocking task, whether
it is a user or kernel thread, its state, its stack with the frames that
run code the transition changes (a patched function, or a live patch
module's code), and what can be done about it.`
		cmd.Flags().BoolVar(&why, "why", false, "explain why each task blocks (patched functions on its stack, advice)")
	}
	return cmd
}

// blockingReport gathers the blocking tasks with their details.
type blockingReport struct {
	iface      livepatch.Interface
	blocking   livepatch.Blocking
	tasks      []livepatch.Task
	states     []livepatch.PatchState
	stacks     [][]string
	stackErrs  []error
	stackFatal error // the first stack error that is the caller's fault (permission)
}

func gatherBlocking(fs livepatch.FS, mode blockingMode, wantStacks bool) (*blockingReport, error) {
	r := &blockingReport{iface: fs.Interface()}
	var err error
	switch {
	case r.iface == livepatch.InterfaceKGraft && mode != klpThreads:
		r.blocking, err = fs.KGraftBlocking(mode == kgrThreads)
	case r.iface == livepatch.InterfaceKGraft:
		r.blocking, err = fs.KGraftBlocking(true)
	case r.iface == livepatch.InterfaceLivepatch:
		var patches []livepatch.Patch
		if patches, err = fs.Patches(); err == nil {
			r.blocking, err = fs.BlockingTasks(patches)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, ts := range r.blocking.Tasks {
		t, err := fs.Task(ts.PID, ts.TID)
		if errors.Is(err, os.ErrNotExist) {
			continue // it exited, so it no longer blocks
		}
		if err != nil {
			return nil, err
		}
		r.tasks = append(r.tasks, t)
		r.states = append(r.states, ts.State)
		var stack []string
		var serr error
		if wantStacks {
			stack, serr = fs.TaskStack(ts.PID, ts.TID)
			if serr != nil && r.stackFatal == nil && !errors.Is(serr, livepatch.ErrStackUnavailable) && !errors.Is(serr, os.ErrNotExist) {
				r.stackFatal = serr
			}
		}
		r.stacks = append(r.stacks, stack)
		r.stackErrs = append(r.stackErrs, serr)
	}
	return r, nil
}

func blockingRun(opts *rootOptions, mode blockingMode) error {
	fs, err := opts.fs()
	if err != nil {
		return err
	}
	r, err := gatherBlocking(fs, mode, opts.verbose >= 2)
	if err != nil {
		return err
	}
	if r.iface != livepatch.InterfaceKGraft {
		mode = klpThreads
	}
	out := opts.env.IO.Out
	if opts.json {
		if err := writeJSON(out, r.json()); err != nil {
			return err
		}
	} else {
		r.print(out, mode, opts.verbose)
	}
	return r.incomplete(opts)
}

// incomplete turns the parts that could not be read into the exit status: a
// list that silently lacks other users' tasks would tell a script that
// nothing blocks.
func (r *blockingReport) incomplete(opts *rootOptions) error {
	un := r.blocking.Stats.Unreadable
	if len(un) > 0 {
		hint := ""
		if errors.Is(un[0].Err, os.ErrPermission) {
			hint = "; run as root to see every blocking task"
		}
		return &exitError{code: ExitError, msg: fmt.Sprintf("could not read the state of %d task(s) (%v)%s", len(un), un[0], hint)}
	}
	if r.stackFatal != nil {
		hint := ""
		if errors.Is(r.stackFatal, os.ErrPermission) {
			hint = "; stack traces need root (CAP_SYS_ADMIN)"
		}
		return &exitError{code: ExitError, msg: fmt.Sprintf("cannot read stack traces: %v%s", r.stackFatal, hint)}
	}
	return nil
}

func (r *blockingReport) print(w io.Writer, mode blockingMode, verbose int) {
	if len(r.tasks) == 0 {
		// With tasks left unread, "no threads" would be a false claim: the
		// unreadable ones may block (stderr says so, and the exit is 1).
		if verbose > 0 && len(r.blocking.Stats.Unreadable) == 0 {
			switch mode {
			case kgrProcesses:
				fmt.Fprintln(w, "no processes with kgr_in_progress set")
			case kgrThreads:
				fmt.Fprintln(w, "no threads with kgr_in_progress set")
			default:
				fmt.Fprintln(w, "no threads with klp_in_progress set")
			}
		}
		return
	}
	for i, t := range r.tasks {
		var id string
		switch mode {
		case kgrProcesses:
			id = strconv.Itoa(t.PID)
		case kgrThreads:
			id = strconv.Itoa(t.PID) + " " + strconv.Itoa(t.TID)
		default:
			id = strconv.Itoa(t.TID)
		}
		if verbose == 0 {
			fmt.Fprintln(w, id)
			continue
		}
		fmt.Fprintf(w, "%s %s\n", id, t.Cmdline)
		if verbose < 2 {
			continue
		}
		switch err := r.stackErrs[i]; {
		case err == nil && len(r.stacks[i]) == 0:
			fmt.Fprintln(w, "    (empty stack)")
		case err == nil:
			for _, f := range r.stacks[i] {
				fmt.Fprintf(w, "    %s\n", f)
			}
		case errors.Is(err, livepatch.ErrStackUnavailable):
			fmt.Fprintln(w, "    (stack traces not available on this kernel)")
		case errors.Is(err, os.ErrPermission):
			fmt.Fprintln(w, "    (stack not readable: permission denied)")
		default:
			fmt.Fprintf(w, "    (stack not readable: %v)\n", err)
		}
	}
}

func (r *blockingReport) json() jsonBlocking {
	doc := jsonBlocking{
		SchemaVersion: SchemaVersion,
		Interface:     string(r.iface),
		Transition:    toJSONTransition(r.blocking.Transition),
		Tasks:         []jsonTask{},
		Unreadable:    []jsonTaskError{},
		TasksScanned:  r.blocking.Stats.Tasks,
	}
	for i, t := range r.tasks {
		doc.Tasks = append(doc.Tasks, newJSONTask(t, r.states[i], r.stacks[i], r.stackErrs[i]))
	}
	for _, u := range r.blocking.Stats.Unreadable {
		doc.Unreadable = append(doc.Unreadable, jsonTaskError{PID: u.PID, TID: u.TID, Path: u.Path, Error: errText(u.Err)})
	}
	return doc
}

// errText gives the locale-independent text of an error, without the path
// that the JSON already carries.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error()
}
