package snapshot

import "time"

// Format identifies a klp snapshot's manifest, and FormatVersion is the
// version of the archive layout this klp writes and reads. It changes only
// when a reader of the previous version would misread the archive; fields
// may be added to the manifest within a version.
const (
	Format        = "klp-snapshot"
	FormatVersion = 1
)

// Manifest describes a snapshot: where and when it was taken, what it holds
// and what could not be read. It is the archive's manifest.json; the
// manifest object of klp snapshot --json (docs/json.md) is the same, and
// docs/schema/snapshot.schema.json describes it. Its JSON is the file
// format itself, hence the tags (see docs/snapshot.md).
type Manifest struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"format_version"`
	KlpVersion    string `json:"klp_version"`
	// Host is the machine's host name (/proc/sys/kernel/hostname).
	Host *string `json:"host"`
	// Time is when the capture started, UTC.
	Time       time.Time `json:"time"`
	DurationMS int64     `json:"duration_ms"`
	// Source says what was captured: "running kernel", "copied tree" (the
	// --sysfs and --procfs copies) or "snapshot" (a snapshot captured
	// again, with --redact for example).
	Source string `json:"source"`
	Kernel Kernel `json:"kernel"`
	// Redacted says that process command lines were replaced by the
	// executable's name (klp snapshot --redact).
	Redacted   bool              `json:"redacted"`
	Transition TransitionCapture `json:"transition"`
	// Captured lists what the archive holds, one item per kind of file.
	Captured []Captured `json:"captured"`
	// Unreadable lists the files that exist but could not be read (at most
	// [MaxUnreadableListed]; UnreadableTotal counts them all). A write-only
	// attribute (force, signal) is not one.
	Unreadable      []Unreadable `json:"unreadable"`
	UnreadableTotal int          `json:"unreadable_total"`
	// Notes are what a reader should know about this capture (a limit
	// reached, a name that could not be captured).
	Notes []string `json:"notes"`
	// Store is the listing of the installed patches (klp list).
	Store Store `json:"store"`
	// Packages are the package descriptions of the loaded patches
	// (klp patches -v), when a package manager could say.
	Packages []Package `json:"packages"`
}

// MaxUnreadableListed bounds [Manifest.Unreadable].
const MaxUnreadableListed = 100

// Kernel describes the captured kernel.
type Kernel struct {
	Release string `json:"release"`
	// Version is /proc/version.
	Version *string `json:"version"`
	// Interface is the live patching interface: livepatch, kgraft, none.
	Interface string `json:"interface"`
}

// TransitionCapture is the transition in progress when the capture started
// and when it ended.
type TransitionCapture struct {
	Before *Transition `json:"before"`
	After  *Transition `json:"after"`
	// Moved is true when the transition was not the same at the end (it
	// finished, started, or was reversed): the task states in the archive
	// may then disagree with each other.
	Moved bool `json:"moved"`
}

// Transition is a transition in progress.
type Transition struct {
	Patch  *string `json:"patch"`  // null on kGraft, which does not name it
	Target string  `json:"target"` // "patched" or "unpatched"
}

// Captured is one kind of captured file.
type Captured struct {
	// What names it: livepatch, modules, tasks, stacks, kernel, config,
	// symbols, ftrace, log.
	What string `json:"what"`
	// Paths are the paths it covers, with <pid>, <tid> and <module> for
	// the many.
	Paths []string `json:"paths"`
	// Files and Bytes count the files and their bytes in the archive.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Unreadable is a file that exists but could not be read.
type Unreadable struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Store is the listing of the installed patches.
type Store struct {
	// Dirs are klp's store and kpatch's.
	Dirs      []string    `json:"dirs"`
	Installed []Installed `json:"installed"`
	// Error is why the listing could not be read, null when it was.
	Error *string `json:"error"`
}

// Installed is one installed patch module file.
type Installed struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Path    string `json:"path"`
	Source  string `json:"source"`
}

// Package is what the package manager said about one loaded patch.
type Package struct {
	Patch string `json:"patch"`
	// Verbose is the detail asked for: 1 (package and changelog) or 2
	// (also expiration and update status).
	Verbose int          `json:"verbose"`
	Package *PackageInfo `json:"package"`
	Notes   []string     `json:"notes"`
	Error   *string      `json:"error"`
}

// PackageInfo describes the package of a patch module.
type PackageInfo struct {
	Manager    string   `json:"manager"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Release    string   `json:"release"`
	Arch       string   `json:"arch"`
	Full       string   `json:"full"`
	CVEs       []string `json:"cves"` // null as the package source said
	Bugs       []string `json:"bugs"`
	Expiration string   `json:"expiration"`
	Update     string   `json:"update"`
}
