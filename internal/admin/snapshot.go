package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// SnapshotOptions configure [System.Snapshot].
type SnapshotOptions struct {
	// Redact replaces each process's command line by the executable's
	// name, for a snapshot that leaves the machine.
	Redact bool
	// Version is klp's version, for the manifest.
	Version string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Installed is the store whose listing the snapshot records, and
	// StoreDirs its directories (nil: none).
	Installed Installed
	StoreDirs []string
	// Packages describes the loaded patches' packages (nil: none).
	Packages PackageSource
	// Origin is the manifest of the snapshot being captured again (nil
	// when capturing a kernel or a copied tree): the state is the
	// origin's, so its time, transition and notes carry over.
	Origin *snapshot.Manifest
	// Root says whether klp runs as root; the manifest notes what a
	// capture without root lacks.
	Root bool
	// Workers is the number of goroutines reading tasks (0: GOMAXPROCS,
	// at most 8).
	Workers int
	// limits replaces the capture's limits (nil: defaultLimits), so that
	// a test can reach them with small trees.
	limits *captureLimits
}

// Limits of a capture: what klp reads of one file, and how much of a tree.
const (
	// maxCmdline is what klp reads of a command line (the same cap as
	// livepatch.FS.Task: enough to recognise the process).
	maxCmdline = 16 << 10
	// maxBigFile bounds kallsyms (about 10 MB), the ftrace lists and the
	// kernel config.
	maxBigFile = 64 << 20
	// maxLog bounds the kernel log read.
	maxLog = 8 << 20
	// maxStacks bounds the stacks captured: early in a transition every
	// task blocks, and klp blocking -vv needs a few, not a million.
	maxStacks = 10000
	// maxWalk bounds the entries of one directory walk, maxWalkDepth its
	// depth.
	maxWalk      = 50000
	maxWalkDepth = 8
)

// captureLimits are the limits one capture applies.
type captureLimits struct {
	cmdline, attr, bigFile, log int64
	stacks, walk, walkDepth     int
}

var defaultLimits = captureLimits{cmdline: maxCmdline, attr: kernel.MaxAttrSize, bigFile: maxBigFile, log: maxLog,
	stacks: maxStacks, walk: maxWalk, walkDepth: maxWalkDepth}

// captureKinds describe, in the manifest's order, what a snapshot holds.
var captureKinds = []snapshot.Captured{
	{What: "livepatch", Paths: []string{"/sys/kernel/livepatch", "/sys/kernel/kgraft"}},
	{What: "modules", Paths: []string{"/proc/modules", "/sys/module/<module>", "/sys/module/<live patch or target module>/**"}},
	{What: "tasks", Paths: []string{"/proc/<pid>/cmdline", "/proc/<pid>/task/<tid>/{patch_state,comm,stat}"}},
	{What: "stacks", Paths: []string{"/proc/<pid>/task/<tid>/stack of each blocking task"}},
	{What: "kernel", Paths: []string{"/proc/cmdline", "/proc/version", "/proc/sys/kernel/{osrelease,hostname,tainted,ftrace_enabled,modules_disabled,kptr_restrict}", "/sys/kernel/security/lockdown", "/sys/module/module/parameters/sig_enforce", "the files klp preflight reads"}},
	{What: "config", Paths: []string{"/boot/config-<release>", "/proc/config.gz"}},
	{What: "symbols", Paths: []string{"/proc/kallsyms (addresses zeroed)"}},
	{What: "ftrace", Paths: []string{"/sys/kernel/tracing/{available_filter_functions,enabled_functions}", "/sys/kernel/debug/kprobes/list"}},
	{What: "log", Paths: []string{"/dev/kmsg: the live patching records"}},
}

// Snapshot captures the kernel s reads into one archive written to out (see
// package snapshot and docs/snapshot.md), and returns its manifest and
// size. It reads through s's handle only, so it captures the running
// kernel, a copied tree or another snapshot alike; it never changes
// anything.
func (s *System) Snapshot(ctx context.Context, out io.Writer, opts SnapshotOptions) (*snapshot.Manifest, int64, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	c := &capture{ctx: ctx, s: s, h: s.K, opts: opts, lim: defaultLimits, w: snapshot.NewWriter(start.UTC()),
		kinds: map[string]*snapshot.Captured{}, recNames: map[string]struct{}{}}
	if opts.limits != nil {
		c.lim = *opts.limits
	}
	for i := range captureKinds {
		k := captureKinds[i]
		k.Paths = append([]string(nil), k.Paths...)
		c.kinds[k.What] = &k
	}
	before, _ := s.Status()
	// The live patching tree and the tasks first, closest to each other
	// and to the status read: they are what the transition changes.
	if err := c.livepatchTree(); err != nil {
		return nil, 0, err
	}
	if err := c.flush(); err != nil {
		return nil, 0, err
	}
	if err := c.tasks(before); err != nil {
		return nil, 0, err
	}
	for _, step := range []func() error{c.modules, c.kernelFacts, c.config, c.symbols, c.ftrace, c.preflightFiles, c.log} {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if err := step(); err != nil {
			return nil, 0, err
		}
	}
	after, _ := s.Status()
	if err := c.flush(); err != nil {
		return nil, 0, err
	}

	m := c.manifest(start, now(), before, after)
	n, err := c.w.WriteTo(out, m)
	if err != nil {
		return nil, n, err
	}
	return m, n, nil
}

// capture is one run of [System.Snapshot].
type capture struct {
	ctx   context.Context
	s     *System
	h     *kernel.Handle
	opts  SnapshotOptions
	lim   captureLimits
	w     *snapshot.Writer
	rec   snapshot.Records // error records and placeholders of the files
	kinds map[string]*snapshot.Captured
	notes []string
	// recNames are the names of rec's records.
	recNames map[string]struct{}
	// procs and threads count the tasks; blocking and stacks the blocking
	// tasks and the stacks read.
	procs, threads, blocking, stacks int
}

// flush adds the error records and placeholders gathered so far.
func (c *capture) flush() error {
	if err := c.w.AddRecords(&c.rec); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	c.rec = snapshot.Records{}
	return nil
}

func (c *capture) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// path is the handle's path of an archive name: sys/x is <sysfs root>/x.
func (c *capture) path(name string) string {
	root, rest, _ := strings.Cut(name, "/")
	var elems []string
	if rest != "" {
		elems = strings.Split(rest, "/")
	}
	switch root {
	case "sys":
		return c.h.SysPath(elems...)
	case "proc":
		return c.h.ProcPath(elems...)
	case "dev":
		return c.h.DevPath(elems...)
	}
	return c.h.BootPath(elems...)
}

// name is the archive name of a path of the handle, "" when it is below
// none of its roots.
func (c *capture) name(p string) string {
	r := c.h.Roots()
	roots := []struct{ dir, name string }{{r.Sys, "sys"}, {r.Proc, "proc"}, {r.Dev, "dev"}, {r.Boot, "boot"}}
	// The longest root first, should one hold another.
	sort.SliceStable(roots, func(i, j int) bool { return len(roots[i].dir) > len(roots[j].dir) })
	for _, root := range roots {
		if p == root.dir {
			return root.name
		}
		if rest, ok := strings.CutPrefix(p, strings.TrimSuffix(root.dir, "/")+"/"); ok {
			return root.name + "/" + rest
		}
	}
	return ""
}

func (c *capture) has(name string) bool { return c.w.Has(name) || c.recorded(name) }

// recorded reports whether name has an error record or a placeholder.
func (c *capture) recorded(name string) bool {
	_, ok := c.recNames[name]
	return ok
}

// file captures one file of kind what, at most limit bytes of it (a longer
// one is cut and the manifest says so). A file that does not exist is not
// recorded: it is absent from the snapshot too. One that could not be read
// is recorded with its error.
func (c *capture) file(what, name string, limit int64) {
	if c.has(name) || snapshot.ValidName(name) != nil {
		return
	}
	p := c.path(name)
	fi, err := c.h.Lstat(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.recError(name, false, "open", err, 0o444)
		}
		return
	}
	if fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
		return
	}
	data, err := c.read(p, limit)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		c.recError(name, false, opOf(err), err, fi.Mode().Perm())
		return
	}
	if int64(len(data)) > limit {
		data = data[:limit]
		c.note("%s was cut at %d bytes", "/"+name, limit)
	}
	c.addFile(what, name, data, fi.Mode().Perm())
}

// read reads up to limit+1 bytes of p.
func (c *capture) read(p string, limit int64) ([]byte, error) {
	f, err := c.h.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

func (c *capture) addFile(what, name string, data []byte, perm fs.FileMode) {
	if err := c.w.File(name, data, perm); err != nil {
		c.note("/%s not captured: %v", name, err)
		return
	}
	k := c.kinds[what]
	k.Files++
	k.Bytes += int64(len(data))
}

// opOf says whether err came from an open or a read.
func opOf(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "read" {
		return "read"
	}
	return "open"
}

// recError records a file (or directory) that could not be read. What a
// snapshot could not show either (a file it did not capture) stays a
// placeholder.
func (c *capture) recError(name string, dir bool, op string, err error, perm fs.FileMode) {
	if c.recorded(name) || c.w.Has(name) {
		return
	}
	var rerr error
	if errors.Is(err, snapshot.ErrNotCaptured) && !dir {
		rerr = c.rec.Placeholder(name, perm)
	} else {
		rerr = c.rec.Error(name, dir, op, err, perm)
	}
	if rerr != nil {
		c.note("/%s not recorded: %v", name, rerr)
		return
	}
	c.recNames[name] = struct{}{}
}

// placeholder records a file known to exist, whose content is not needed.
func (c *capture) placeholder(name string, perm fs.FileMode) {
	if c.has(name) || snapshot.ValidName(name) != nil {
		return
	}
	if c.rec.Placeholder(name, perm) == nil {
		c.recNames[name] = struct{}{}
	}
}

// walk captures the tree below name, maxDepth directories deep: its
// directories (an empty one matters: a function directory has no files),
// its regular files, and the errors met. With follow, a symbolic link to a
// directory is walked as the directory (a copy made with cp -rs, which klp
// reads the same way); other links are left out. skip names entries left
// out (with their subtrees).
func (c *capture) walk(what, name string, maxDepth int, follow bool, skip func(name string) bool) {
	budget := c.lim.walk
	var rec func(name string, depth int)
	rec = func(name string, depth int) {
		if depth > maxDepth || snapshot.ValidName(name) != nil {
			return
		}
		p := c.path(name)
		entries, err := c.h.ReadDir(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				perm := fs.FileMode(0o555)
				if fi, serr := c.h.Lstat(p); serr == nil {
					perm = fi.Mode().Perm()
				}
				c.recError(name, true, "open", err, perm)
			}
			return
		}
		perm := fs.FileMode(0o755)
		if fi, err := c.h.Lstat(p); err == nil {
			perm = fi.Mode().Perm()
		}
		if err := c.w.Dir(name, perm); err != nil {
			c.note("/%s not captured: %v", name, err)
			return
		}
		for _, e := range entries {
			if budget--; budget < 0 {
				c.note("/%s: more than %d entries, the rest not captured", name, c.lim.walk)
				return
			}
			child := name + "/" + e.Name()
			if snapshot.ValidName(child) != nil {
				c.note("%q in /%s: a name a snapshot cannot hold, not captured", e.Name(), name)
				continue
			}
			if skip != nil && skip(child) {
				continue
			}
			switch {
			case e.IsDir() || follow && c.h.IsDirEntry(p, e):
				if depth < maxDepth {
					rec(child, depth+1)
				}
			case e.Type()&fs.ModeSymlink != 0:
				// sysfs links (holders, drivers) point elsewhere in
				// sysfs; klp reads none of them.
			default:
				c.file(what, child, c.lim.attr)
			}
		}
	}
	rec(name, 0)
}

// livepatchTree captures /sys/kernel/livepatch and /sys/kernel/kgraft.
func (c *capture) livepatchTree() error {
	for _, name := range []string{"sys/kernel/livepatch", "sys/kernel/kgraft"} {
		c.walk("livepatch", name, c.lim.walkDepth, true, nil)
	}
	return nil
}

// modules captures /proc/modules, the attributes of every loaded module,
// every /sys/module directory (a built-in object has one), and the whole
// directory of the live patch modules and the modules they patch.
func (c *capture) modules() error {
	c.file("modules", "proc/modules", c.lim.bigFile)
	deep := map[string]bool{}
	if names, err := c.s.LivepatchModules(); err == nil {
		for _, n := range names {
			deep[n] = true
		}
	}
	for _, obj := range c.patchObjects() {
		deep[obj] = true
	}
	loaded := map[string]bool{}
	if mods, err := c.s.Mod.Modules(); err == nil {
		for _, m := range mods {
			loaded[m.Name] = true
		}
	}
	entries, err := c.h.ReadDir(c.path("sys/module"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.recError("sys/module", true, "open", err, 0o755)
		}
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if kernel.ValidateModuleName(name) != nil || kernel.ModuleName(name) != name {
			c.note("/sys/module/%q: not a module name, not captured", name)
			continue
		}
		dir := "sys/module/" + name
		switch {
		case deep[name]:
			// sections/ holds the module's addresses, holders/ links:
			// nothing klp reads.
			c.walk("modules", dir, c.lim.walkDepth, false, func(n string) bool {
				return n == dir+"/sections" || n == dir+"/holders"
			})
		case loaded[name]:
			c.walk("modules", dir, 0, false, nil) // its attributes
		default:
			// A built-in object: its directory says so; its parameters
			// are nothing klp reads.
			if err := c.w.Dir(dir, 0o755); err != nil {
				c.note("/%s not captured: %v", dir, err)
			}
		}
	}
	return nil
}

// patchObjects returns the target modules of the loaded patches.
func (c *capture) patchObjects() []string {
	var out []string
	switch c.s.Interface() {
	case livepatch.InterfaceLivepatch:
		patches, _ := c.s.LP.Patches()
		for _, p := range patches {
			for _, o := range p.Objects {
				if o.Name != "vmlinux" {
					out = append(out, o.Name)
				}
			}
		}
	case livepatch.InterfaceKGraft:
		patches, _ := c.s.LP.KGraftPatches()
		for _, p := range patches {
			out = append(out, p.Name)
			for _, f := range p.Functions {
				if f.Object != "" && f.Object != "vmlinux" {
					out = append(out, f.Object)
				}
			}
		}
	}
	return out
}

// kernelFacts captures the kernel's own small files klp reads.
func (c *capture) kernelFacts() error {
	for _, name := range []string{
		"proc/sys/kernel/osrelease", "proc/sys/kernel/hostname", "proc/version", "proc/cmdline",
		"proc/sys/kernel/tainted", "proc/sys/kernel/ftrace_enabled", "proc/sys/kernel/modules_disabled",
		"proc/sys/kernel/kptr_restrict",
		"sys/kernel/security/lockdown", "sys/module/module/parameters/sig_enforce", "sys/module/compression",
	} {
		c.file("kernel", name, c.lim.attr)
	}
	return nil
}

// config captures the kernel's configuration: /boot/config-<release> and
// /proc/config.gz, whichever exist.
func (c *capture) config() error {
	if rel, err := c.h.Release(); err == nil && store.ValidateRelease(rel) == nil {
		c.file("config", "boot/config-"+rel, c.lim.bigFile)
	}
	c.file("config", "proc/config.gz", c.lim.bigFile)
	return nil
}

// symbols captures /proc/kallsyms with every address zeroed: klp needs
// the names, types and modules (preflight resolves symbols as the kernel
// will), and the snapshot then gives away no address of the machine.
func (c *capture) symbols() error {
	const name = "proc/kallsyms"
	p := c.path(name)
	f, err := c.h.Open(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.recError(name, false, "open", err, 0o444)
		}
		return nil
	}
	defer f.Close()
	var out bytes.Buffer
	br := bufio.NewReaderSize(io.LimitReader(f, c.lim.bigFile+1), 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// No real line is this long: keep it as it is.
			out.Write(line)
			continue
		}
		out.Write(zeroAddress(line))
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.recError(name, false, "read", err, 0o444)
				return nil
			}
			break
		}
	}
	if int64(out.Len()) > c.lim.bigFile {
		c.note("/%s was cut at %d bytes", name, c.lim.bigFile)
		out.Truncate(int(c.lim.bigFile))
	}
	c.addFile("symbols", name, out.Bytes(), 0o444)
	return nil
}

// zeroAddress replaces the hexadecimal address that starts a kallsyms line
// with zeros, in place.
func zeroAddress(line []byte) []byte {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			line[i] = '0'
		default:
			return line
		}
	}
	return line
}

// ftrace captures the lists preflight checks a patch's functions against.
func (c *capture) ftrace() error {
	for _, dir := range []string{"sys/kernel/tracing", "sys/kernel/debug/tracing"} {
		for _, f := range []string{"available_filter_functions", "enabled_functions"} {
			c.file("ftrace", dir+"/"+f, c.lim.bigFile)
		}
	}
	c.file("ftrace", "sys/kernel/debug/kprobes/list", c.lim.bigFile)
	return nil
}

// preflightFiles runs preflight's system checks through a handle that
// records what they read, and captures that: whatever preflight comes to
// read, a snapshot answers it as the kernel did. A directory it lists is
// recorded with its entries' names.
func (c *capture) preflightFiles() error {
	rf := &recordingFiles{Files: c.h.Files(), seen: map[string]string{}}
	_, osDirs := c.h.ProcDir()
	rh, err := kernel.NewHandle(c.h.Roots(), rf, osDirs)
	if err != nil {
		return nil // the handle's own roots: cannot happen
	}
	if _, err := preflight.Run(c.ctx, preflight.Inputs{Kernel: rh}); err != nil {
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		c.note("preflight's system checks failed (%v): the files they read may be missing", err)
	}
	paths := make([]string, 0, len(rf.seen))
	for p := range rf.seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		name := c.name(p)
		if name == "" || snapshot.ValidName(name) != nil {
			continue
		}
		switch rf.seen[p] {
		case "open":
			c.file("kernel", name, c.lim.bigFile)
		case "readdir":
			c.listing(name)
		default:
			c.exists(name)
		}
	}
	return nil
}

// listing records a directory and the names of its entries.
func (c *capture) listing(name string) {
	entries, err := c.h.ReadDir(c.path(name))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.recError(name, true, "open", err, 0o555)
		}
		return
	}
	if err := c.w.Dir(name, 0o755); err != nil {
		return
	}
	for _, e := range entries {
		c.exists(name + "/" + e.Name())
	}
}

// exists records that name exists: a directory, or a placeholder file.
func (c *capture) exists(name string) {
	if c.has(name) || snapshot.ValidName(name) != nil {
		return
	}
	fi, err := c.h.Lstat(c.path(name))
	switch {
	case err != nil:
		return
	case fi.IsDir():
		_ = c.w.Dir(name, fi.Mode().Perm())
	case fi.Mode().IsRegular():
		c.placeholder(name, fi.Mode().Perm())
	}
}

// recordingFiles is a kernel.Files that notes every path it is asked
// about, with the strongest question asked: open, readdir or stat.
type recordingFiles struct {
	kernel.Files
	mu   sync.Mutex
	seen map[string]string
}

func (r *recordingFiles) note(p, op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.seen[p]; old == "open" || old == "readdir" {
		return
	}
	r.seen[p] = op
}

func (r *recordingFiles) Open(p string) (io.ReadCloser, error) {
	r.note(p, "open")
	return r.Files.Open(p)
}

func (r *recordingFiles) ReadDir(p string) ([]fs.DirEntry, error) {
	r.note(p, "readdir")
	return r.Files.ReadDir(p)
}

func (r *recordingFiles) Lstat(p string) (fs.FileInfo, error) {
	r.note(p, "stat")
	return r.Files.Lstat(p)
}

func (r *recordingFiles) Stat(p string) (fs.FileInfo, error) {
	r.note(p, "stat")
	return r.Files.Stat(p)
}

// log captures the kernel's live patching records: from /dev/kmsg on the
// running kernel, from the dev/kmsg file of a copied tree or a snapshot.
func (c *capture) log() error {
	const name = "dev/kmsg"
	var data []byte
	var err error
	if c.h.KernelFS() {
		var rc io.ReadCloser
		if rc, err = (kmod.DevKmsg{Path: c.path(name)}).OpenLog(); err == nil {
			data, err = io.ReadAll(io.LimitReader(rc, c.lim.log))
			rc.Close()
		}
	} else {
		// A copied tree's /dev is this machine's: only a regular file
		// (a snapshot's, or one a support engineer put there) is the
		// captured machine's log.
		if fi, serr := c.h.Lstat(c.path(name)); serr != nil || !fi.Mode().IsRegular() {
			return nil
		}
		data, err = c.read(c.path(name), c.lim.log)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.recError(name, false, opOf(err), err, 0o644)
		}
		return nil
	}
	mods, _ := c.s.LivepatchModules()
	c.addFile("log", name, livepatchRecords(data, mods), 0o644)
	return nil
}

// livepatchRecords keeps the records of a /dev/kmsg text that are about
// live patching: the livepatch core's ("livepatch: ..."), kGraft's, and
// those of the live patch modules (taint, signature, load errors).
func livepatchRecords(data []byte, modules []string) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 || line[0] == ' ' {
			continue // a record's dictionary lines
		}
		_, msg, ok := bytes.Cut(line, []byte(";"))
		if !ok {
			continue
		}
		keep := bytes.Contains(msg, []byte("livepatch")) || bytes.HasPrefix(msg, []byte("kgr")) || bytes.Contains(msg, []byte("kGraft"))
		for _, m := range modules {
			keep = keep || bytes.HasPrefix(msg, []byte(m+": "))
		}
		if keep {
			out.Write(line)
			if line[len(line)-1] != '\n' {
				out.WriteByte('\n')
			}
		}
	}
	return out.Bytes()
}

// taskResult is what one worker captured.
type taskResult struct {
	rec    snapshot.Records
	states []livepatch.TaskState
	procs  []livepatch.TaskState // kGraft's per-process flags
	n      struct{ procs, threads int }
}

// tasks captures every task's files, then the stacks of the blocking ones
// (by the states just read, the way klp blocking decides).
func (c *capture) tasks(before Status) error {
	file := "patch_state"
	if c.s.Interface() == livepatch.InterfaceKGraft {
		file = "kgr_in_progress"
	}
	entries, err := c.h.ReadDir(c.path("proc"))
	if err != nil {
		return fmt.Errorf("snapshot: list tasks: %w", err)
	}
	var pids []string
	for _, e := range entries {
		if isPID(e.Name()) && e.IsDir() {
			pids = append(pids, e.Name())
		}
	}
	workers := c.opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 8)
	}
	results := make([]taskResult, workers)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(res *taskResult) {
			defer wg.Done()
			for {
				next.Lock()
				if i >= len(pids) || c.ctx.Err() != nil {
					next.Unlock()
					return
				}
				pid := pids[i]
				i++
				next.Unlock()
				c.process(res, pid, file)
			}
		}(&results[w])
	}
	wg.Wait()
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var states, procs []livepatch.TaskState
	k := c.kinds["tasks"]
	for i := range results {
		r := &results[i]
		if err := c.w.AddRecords(&r.rec); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		nf, nb := r.rec.Counts()
		k.Files += nf
		k.Bytes += nb
		states = append(states, r.states...)
		procs = append(procs, r.procs...)
		c.procs += r.n.procs
		c.threads += r.n.threads
	}
	c.stacksOf(before, states, procs)
	return nil
}

// process captures one process: its command line and each thread's files.
func (c *capture) process(res *taskResult, pid, file string) {
	dir := "proc/" + pid
	exited := false
	err := c.h.ReadFiles(c.path(dir), []string{"cmdline"}, c.lim.cmdline, func(_ string, raw []byte, err error) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			exited = true
		case err != nil:
			_ = res.rec.Error(dir+"/cmdline", false, opOf(err), err, 0o444)
		default:
			if int64(len(raw)) > c.lim.cmdline {
				raw = raw[:c.lim.cmdline]
			}
			if c.opts.Redact {
				raw = redactCmdline(raw)
			}
			_ = res.rec.Data(dir+"/cmdline", raw)
		}
	})
	if exited || errors.Is(err, fs.ErrNotExist) {
		return
	}
	res.n.procs++
	id, _ := strconv.Atoi(pid)
	if file == "kgr_in_progress" {
		_ = c.h.ReadFiles(c.path(dir), []string{file}, c.lim.attr, func(_ string, b []byte, err error) {
			if v, ok := res.taskFile(dir+"/"+file, b, err, c.lim.attr); ok {
				res.procs = append(res.procs, livepatch.TaskState{PID: id, TID: id, State: v})
			}
		})
	}
	tasks, err := c.h.ReadDir(c.path(dir + "/task"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			_ = res.rec.Error(dir+"/task", true, "open", err, 0o555)
		}
		return
	}
	names := []string{file, "comm", "stat"}
	for _, t := range tasks {
		if !isPID(t.Name()) {
			continue
		}
		tdir := dir + "/task/" + t.Name()
		tid, _ := strconv.Atoi(t.Name())
		err := c.h.ReadFiles(c.path(tdir), names, c.lim.attr, func(name string, b []byte, err error) {
			v, ok := res.taskFile(tdir+"/"+name, b, err, c.lim.attr)
			if ok && name == file {
				res.states = append(res.states, livepatch.TaskState{PID: id, TID: tid, State: v})
			}
		})
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // it exited
		case err != nil:
			_ = res.rec.Error(tdir, true, "open", err, 0o555)
		}
		res.n.threads++
	}
}

// taskFile records one small task file read (or its error) and, for a
// state file, returns its value.
func (res *taskResult) taskFile(name string, b []byte, err error, limit int64) (livepatch.PatchState, bool) {
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			_ = res.rec.Error(name, false, opOf(err), err, 0o444)
		}
		return 0, false
	}
	if int64(len(b)) > limit {
		b = b[:limit]
	}
	if err := res.rec.Data(name, b); err != nil {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return livepatch.PatchState(v), true
}

// stacksOf captures the stacks of the tasks that block the transition, by
// klp's rule: upstream, a task whose patch_state is 0 or 1 and not the
// target; on kGraft, a thread or process whose flag is set.
func (c *capture) stacksOf(before Status, states, procs []livepatch.TaskState) {
	if !before.InProgress || before.Transition == nil {
		return
	}
	target := before.Transition.Target
	blocks := func(v livepatch.PatchState) bool { return v >= 0 && v != target }
	if c.s.Interface() == livepatch.InterfaceKGraft {
		blocks = func(v livepatch.PatchState) bool { return v != 0 }
	}
	blockingPIDs := map[int]bool{}
	for _, p := range procs {
		if blocks(p.State) {
			blockingPIDs[p.PID] = true
		}
	}
	var want []livepatch.TaskState
	for _, t := range states {
		if blocks(t.State) || blockingPIDs[t.PID] {
			want = append(want, t)
		}
	}
	sort.Slice(want, func(i, j int) bool {
		return want[i].PID < want[j].PID || want[i].PID == want[j].PID && want[i].TID < want[j].TID
	})
	c.blocking = len(want)
	if len(want) > c.lim.stacks {
		c.note("%d tasks block the transition: the stacks of the first %d were captured", len(want), c.lim.stacks)
		want = want[:c.lim.stacks]
	}
	var rec snapshot.Records
	k := c.kinds["stacks"]
	for _, t := range want {
		dir := fmt.Sprintf("proc/%d/task/%d", t.PID, t.TID)
		_ = c.h.ReadFiles(c.path(dir), []string{"stack"}, c.lim.attr, func(_ string, b []byte, err error) {
			name := dir + "/stack"
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					_ = rec.Error(name, false, opOf(err), err, 0o400)
				}
				return
			}
			if int64(len(b)) > c.lim.attr {
				b = b[:c.lim.attr]
			}
			if rec.Data(name, b) == nil {
				c.stacks++
				k.Files++
				k.Bytes += int64(len(b))
			}
		})
	}
	if err := c.w.AddRecords(&rec); err != nil {
		c.note("stacks not captured: %v", err)
	}
}

func isPID(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// redactCmdline is what --redact keeps of a command line: the executable's
// name, the last element of the first argument cut at its first space
// (a process that rewrote its arguments, as sshd and postgres do, puts its
// title there) without a trailing ':'. A kernel thread's empty command line
// stays empty.
func redactCmdline(raw []byte) []byte {
	if len(raw) == 0 {
		return raw
	}
	first, _, _ := bytes.Cut(raw, []byte{0})
	first, _, _ = bytes.Cut(first, []byte{' '})
	base := path.Base(strings.TrimRight(string(first), ":"))
	if base == "." || base == "/" || base == "" {
		base = "?"
	}
	return append([]byte(base), 0)
}

// manifest builds the manifest of the capture.
func (c *capture) manifest(start, end time.Time, before, after Status) *snapshot.Manifest {
	m := &snapshot.Manifest{
		Format: snapshot.Format, FormatVersion: snapshot.FormatVersion, KlpVersion: c.opts.Version,
		Time: start.UTC().Truncate(time.Millisecond), DurationMS: end.Sub(start).Milliseconds(),
		Source:   "copied tree",
		Redacted: c.opts.Redact,
		Transition: snapshot.TransitionCapture{
			Before: snapTransition(before), After: snapTransition(after),
		},
		Captured: []snapshot.Captured{}, Unreadable: []snapshot.Unreadable{}, Notes: []string{},
		Store: snapshot.Store{Dirs: nonNilStrings(c.opts.StoreDirs), Installed: []snapshot.Installed{}},
	}
	m.Transition.Moved = !sameTransition(m.Transition.Before, m.Transition.After)
	if c.h.KernelFS() {
		m.Source = "running kernel"
	}
	if host := c.s.Host(); host != "" {
		m.Host = &host
	}
	m.Kernel.Release, _ = c.h.Release()
	if v, err := c.h.ReadString(c.path("proc/version")); err == nil && v != "" {
		m.Kernel.Version = &v
	}
	m.Kernel.Interface = string(c.s.Interface())
	k := c.kinds["tasks"]
	k.Paths = append(k.Paths, plural(c.procs, "process", "processes")+", "+plural(c.threads, "thread", "threads"))
	if c.s.Interface() == livepatch.InterfaceKGraft {
		k.Paths = append(k.Paths, "/proc/<pid>/kgr_in_progress", "/proc/<pid>/task/<tid>/kgr_in_progress")
	}
	c.kinds["stacks"].Paths = append(c.kinds["stacks"].Paths, plural(c.blocking, "blocking task", "blocking tasks")+", "+plural(c.stacks, "stack", "stacks"))
	for _, kind := range captureKinds {
		m.Captured = append(m.Captured, *c.kinds[kind.What])
	}
	// The tasks are read concurrently: the errors are listed by path, so
	// that one tree gives one manifest.
	errs := append([]snapshot.Error(nil), c.w.Errors()...)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Name < errs[j].Name })
	for _, e := range errs {
		if !e.Dir && e.Perm&0o444 == 0 {
			continue // a write-only attribute (force, signal)
		}
		m.UnreadableTotal++
		if len(m.Unreadable) < snapshot.MaxUnreadableListed {
			p := "/" + e.Name
			if e.Dir {
				p += "/"
			}
			m.Unreadable = append(m.Unreadable, snapshot.Unreadable{Path: p, Error: errString(e.Err)})
		}
	}
	if !c.opts.Root {
		c.note("not captured as root: stacks, the ftrace lists and the kernel log need root, and other users' tasks may be missing")
	}
	if m.Transition.Moved {
		c.note("the transition changed during the capture: the task states may not agree with each other")
	}
	if c.opts.Installed != nil {
		list, err := c.opts.Installed.List("")
		if err != nil {
			s := err.Error()
			m.Store.Error = &s
		}
		for _, in := range list {
			m.Store.Installed = append(m.Store.Installed, snapshot.Installed{Name: in.Name, Release: in.Release, Path: in.Path, Source: in.Source})
		}
	}
	m.Packages = c.packages()
	if o := c.opts.Origin; o != nil {
		// The state is the origin's: when and where it was, and what
		// its capture met.
		m.Time, m.Source, m.Transition = o.Time, o.Source, o.Transition
		m.Redacted = m.Redacted || o.Redacted
		m.Notes = append(m.Notes, o.Notes...)
		c.note("captured again from a snapshot with klp %s at %s", c.opts.Version, start.UTC().Format(time.RFC3339))
	}
	m.Notes = append(m.Notes, c.notes...)
	return m
}

// packages asks the package source about every loaded patch, at both
// levels of detail klp patches shows.
func (c *capture) packages() []snapshot.Package {
	out := []snapshot.Package{}
	if c.opts.Packages == nil {
		return out
	}
	pl, err := c.s.Patches(nil, 0)
	if err != nil {
		return out
	}
	for _, p := range pl.Patches {
		for verbose := 1; verbose <= 2; verbose++ {
			info, notes, err := c.opts.Packages.Describe(p.Name, verbose)
			rec := snapshot.Package{Patch: p.Name, Verbose: verbose, Notes: nonNilStrings(notes)}
			if err != nil {
				s := err.Error()
				rec.Error = &s
			}
			if info != nil {
				rec.Package = &snapshot.PackageInfo{Manager: info.Manager, Name: info.Name, Version: info.Version, Release: info.Release,
					Arch: info.Arch, Full: info.Full, CVEs: info.CVEs, Bugs: info.Bugs,
					Expiration: info.Expiration, Update: info.Update}
			}
			out = append(out, rec)
		}
	}
	return out
}

// errString is an error's text without the path, which the manifest
// names apart.
func errString(err error) string {
	if err == nil {
		return ""
	}
	for {
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			return err.Error()
		}
		err = pe.Err
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func snapTransition(st Status) *snapshot.Transition {
	if !st.InProgress || st.Transition == nil {
		return nil
	}
	t := &snapshot.Transition{Target: st.Transition.Target.String()}
	if st.Transition.Patch != "" {
		p := st.Transition.Patch
		t.Patch = &p
	}
	return t
}

func sameTransition(a, b *snapshot.Transition) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Target == b.Target && (a.Patch == nil) == (b.Patch == nil) && (a.Patch == nil || *a.Patch == *b.Patch)
}

// RecordedPackages answers package questions from what a snapshot
// recorded (klp patches -v on a snapshot): the machine's package manager,
// not this one's.
func RecordedPackages(pkgs []snapshot.Package) PackageSource {
	if len(pkgs) == 0 {
		return nil
	}
	return recordedPackages(pkgs)
}

type recordedPackages []snapshot.Package

func (r recordedPackages) Describe(module string, verbose int) (*PackageInfo, []string, error) {
	level := min(max(verbose, 1), 2)
	for _, p := range r {
		if p.Patch != module || p.Verbose != level {
			continue
		}
		var err error
		if p.Error != nil {
			err = errors.New(*p.Error)
		}
		if p.Package == nil {
			return nil, p.Notes, err
		}
		i := p.Package
		return &PackageInfo{Manager: i.Manager, Name: i.Name, Version: i.Version, Release: i.Release, Arch: i.Arch, Full: i.Full,
			CVEs: i.CVEs, Bugs: i.Bugs, Expiration: i.Expiration, Update: i.Update}, p.Notes, err
	}
	return nil, nil, nil
}

// plural is "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
