package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Guest layout, kept in step with e2e/internal/harness.
const (
	moduleDir  = "/e2e/modules"
	foreignDir = "/e2e/foreign" // other kernels' klp_e2e_cmdline.ko, by release
	// compressedDir holds klp_e2e_cmdline.ko compressed as kbuild does.
	compressedDir = "/e2e/compressed"
	userUID       = 1000 // klpuser in /etc/passwd
)

// result is what a command did.
type result struct {
	argv   []string
	stdout string
	stderr string
	code   int // exit status; -1 if it could not run or was killed
	err    error
}

func (res result) String() string {
	return fmt.Sprintf("%q: exit %d, stdout %q, stderr %q", strings.Join(res.argv, " "), res.code, res.stdout, res.stderr)
}

// run runs a command as root with a timeout, capturing its output.
func run(argv ...string) result { return runCred(nil, argv...) }

// runAsUser runs a command as the unprivileged guest user.
func runAsUser(argv ...string) result {
	return runCred(&syscall.Credential{Uid: userUID, Gid: userUID}, argv...)
}

func runCred(cred *syscall.Credential, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/home/klpuser"
	}
	err := cmd.Run()
	res := result{argv: argv, stdout: out.String(), stderr: errb.String(), err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.code = 0
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
		res.err = nil
	default:
		res.code = -1
	}
	recordOutput(argv, res.stdout)
	return res
}

// klp runs /bin/klp as root.
func klp(args ...string) result { return run(append([]string{"/bin/klp"}, args...)...) }

// kgr runs /bin/kgr, a symlink to klp that selects the kgr personality.
func kgr(args ...string) result { return run(append([]string{"/bin/kgr"}, args...)...) }

// klpUser runs /bin/klp as the unprivileged user.
func klpUser(args ...string) result {
	return runAsUser(append([]string{"/bin/klp"}, args...)...)
}

func insmod(module string, params ...string) result {
	return run(append([]string{"insmod", moduleDir + "/" + module + ".ko"}, params...)...)
}

func rmmod(module string) result { return run("rmmod", module) }

// child is a background process started by a scenario.
type child struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// syncBuffer is a bytes.Buffer that the child's output copier can write
// while the scenario reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (c *child) stdoutText() string { return c.stdout.String() }

// start starts a background process in its own process group, as the given
// user (nil: root). Scenarios use it for the user-space blocker.
func (r *runner) start(cred *syscall.Credential, argv ...string) (*child, error) {
	c := &child{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	// Its own process group, as a process started from another session would
	// be; kgr poke skips the caller's own group.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.Stdin = nil
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	r.children = append(r.children, c)
	return c, nil
}

// exited reports whether the child has exited, waiting at most d.
func (c *child) exited(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// cleanup brings the system back to "no patch, no e2e module": it releases
// every blocker, disables the patches, unloads the modules and kills the
// scenario's children. A failure here is reported, because the next
// scenario would start from a dirty system.
func (r *runner) cleanup() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
	r.undo = nil
	for _, p := range []string{
		"/sys/module/klp_e2e_target/parameters/block_kthread",
		"/sys/module/klp_e2e_target/parameters/block_read",
		"/sys/module/klp_e2e_target/parameters/read_uninterruptible",
		"/sys/module/klp_e2e_target_patch/parameters/block",
		pinnedParams + "block",
	} {
		if exists(p) {
			_ = writeFile(p, "0")
		}
	}
	for _, c := range r.children {
		if !c.exited(0) {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			c.exited(5 * time.Second)
		}
	}
	r.children = nil
	ok := waitFor(30*time.Second, func() bool {
		names := sysPatchNames()
		if len(names) == 0 {
			return true
		}
		if n, _ := kernelTransition(); n != "" {
			return false // wait: disabling during a transition is EBUSY
		}
		for _, n := range names {
			if en, err := readInt(lpRoot + "/" + n + "/enabled"); err == nil && en == 1 {
				_ = writeFile(lpRoot+"/"+n+"/enabled", "0")
			}
		}
		return false
	})
	if !ok {
		r.fail("cleanup", "patches still present after 30s: %v", sysPatchNames())
		return
	}
	// Patch modules first, once their reference is dropped (refcnt 0), then
	// the rest; a second round catches modules whose refcnt dropped late.
	for tries := 0; tries < 3; tries++ {
		mods := r.removableModules()
		if len(mods) == 0 {
			return
		}
		for _, m := range mods {
			if strings.HasSuffix(m, "_patch") || strings.HasPrefix(m, "livepatch_") || m == "klp_e2e_cmdline" || m == "klp_e2e_replace" || m == "klp_e2e_lockdown" {
				waitFor(5*time.Second, func() bool { n, _ := readInt("/sys/module/" + m + "/refcnt"); return n == 0 })
				rmmod(m)
			}
		}
		for _, m := range r.removableModules() {
			rmmod(m)
		}
	}
	if mods := r.removableModules(); len(mods) > 0 {
		r.fail("cleanup", "modules still loaded: %v", mods)
	}
}

// removableModules lists the loaded e2e modules but the pinned ones.
func (r *runner) removableModules() []string {
	var mods []string
	for _, m := range loadedE2EModules() {
		if !r.pinned[m] {
			mods = append(mods, m)
		}
	}
	return mods
}
