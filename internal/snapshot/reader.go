package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/klp-project/klp/internal/sysfile"
)

// Limits bound what [Read] accepts, so that a hostile archive cannot make
// klp allocate without end. The defaults hold a host with a million
// threads.
type Limits struct {
	// Archive bounds the compressed file ([Open] only).
	Archive int64
	// Total bounds the uncompressed archive.
	Total int64
	// Entry bounds one entry.
	Entry int64
	// Files bounds the entries and packed records.
	Files int
}

// DefaultLimits are the limits of [Open].
var DefaultLimits = Limits{Archive: 256 << 20, Total: 1 << 30, Entry: 512 << 20, Files: 4 << 20}

// maxManifest bounds manifest.json.
const maxManifest = 4 << 20

// zstdMagic starts every zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Open reads the snapshot file at path within [DefaultLimits].
func Open(path string) (*Archive, error) {
	f, err := sysfile.OpenFollow(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if fi.Size() > DefaultLimits.Archive {
		return nil, fmt.Errorf("read snapshot %s: %w: %d bytes, more than the %d a snapshot may have", path, ErrCorrupt, fi.Size(), DefaultLimits.Archive)
	}
	a, err := Read(f, DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	a.size = fi.Size()
	return a, nil
}

// Read reads a snapshot archive into memory. Every error wraps
// [ErrCorrupt] and says what is wrong with the archive, except a read
// error of r itself.
func Read(r io.Reader, lim Limits) (*Archive, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if !bytes.Equal(magic, zstdMagic) {
		what := "not zstd-compressed"
		switch {
		case len(magic) == 0:
			what = "empty"
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			what = "gzip-compressed, klp writes zstd"
		}
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20),
		zstd.WithDecoderMaxMemory(uint64(max(lim.Total, 0))+64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	defer zr.Close()
	lr := &limitReader{r: zr, left: lim.Total}
	a, err := readTar(tar.NewReader(lr), lim)
	if err != nil {
		if lr.over {
			return nil, fmt.Errorf("%w: more than %d bytes uncompressed", ErrCorrupt, lim.Total)
		}
		return nil, err
	}
	return a, nil
}

// limitReader fails once more than left bytes were read.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

var errOverLimit = errors.New("over the size limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.over = true
		return 0, errOverLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// entryError describes what went wrong reading the archive's entries.
func entryError(err error, after string) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	where := "at the start"
	if after != "" {
		where = "after " + after
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, where)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrInsecurePath):
		return fmt.Errorf("%w: bad tar header %s: %w", ErrCorrupt, where, err)
	}
	return fmt.Errorf("%w: corrupted %s: %w", ErrCorrupt, where, err)
}

func readTar(tr *tar.Reader, lim Limits) (*Archive, error) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: an empty archive", ErrCorrupt)
	}
	if err != nil {
		return nil, entryError(err, "")
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxManifest {
		return nil, fmt.Errorf("%w: the first entry is %q, not its %s", ErrCorrupt, hdr.Name, ManifestName)
	}
	mj, err := readEntry(tr, hdr, maxManifest)
	if err != nil {
		return nil, entryError(err, "")
	}
	a := &Archive{root: &node{dir: true, perm: 0o555, kids: map[string]*node{}}}
	if err := a.parseManifest(mj); err != nil {
		return nil, err
	}
	files := 0
	var packed []byte
	havePacked := false
	last := ManifestName
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, entryError(err, last)
		}
		if files++; files > lim.Files {
			return nil, fmt.Errorf("%w: more than %d entries", ErrCorrupt, lim.Files)
		}
		name := hdr.Name
		switch hdr.Typeflag {
		case tar.TypeReg: // the reader turns an old writer's TypeRegA into this
		case tar.TypeDir:
			name = strings.TrimSuffix(name, "/")
		default:
			return nil, fmt.Errorf("%w: entry %q is %s: a klp snapshot holds only regular files and directories", ErrCorrupt, hdr.Name, typeName(hdr.Typeflag))
		}
		if hdr.Size < 0 || hdr.Size > lim.Entry {
			return nil, fmt.Errorf("%w: entry %q has %d bytes, more than the %d an entry may have", ErrCorrupt, hdr.Name, hdr.Size, lim.Entry)
		}
		if name == PackedName && hdr.Typeflag != tar.TypeDir {
			if havePacked {
				return nil, fmt.Errorf("%w: two %s entries", ErrCorrupt, PackedName)
			}
			havePacked = true
			if packed, err = readEntry(tr, hdr, lim.Entry); err != nil {
				return nil, entryError(err, last)
			}
			last = name
			continue
		}
		if err := ValidName(name); err != nil {
			return nil, fmt.Errorf("%w: entry %w", ErrCorrupt, err)
		}
		n := &node{perm: fs.FileMode(hdr.Mode).Perm()}
		if hdr.Typeflag == tar.TypeDir {
			n.dir = true
		} else if n.data, err = readEntry(tr, hdr, lim.Entry); err != nil {
			return nil, entryError(err, last)
		}
		if err := a.insert(name, n); err != nil {
			return nil, err
		}
		last = name
	}
	if !havePacked {
		return nil, fmt.Errorf("%w: no %s entry (truncated?)", ErrCorrupt, PackedName)
	}
	err = parsePacked(packed, func(r record) error {
		if files++; files > lim.Files {
			return fmt.Errorf("%w: more than %d entries", ErrCorrupt, lim.Files)
		}
		n := &node{perm: r.perm, dir: r.dir}
		switch r.kind {
		case recordData:
			n.data, n.perm = r.data, 0o444
		case recordError:
			n.err, n.op = r.err, r.op
		case recordPlaceholder:
			n.err, n.op = ErrNotCaptured, "open"
		}
		return a.insert(r.name, n)
	})
	if err != nil {
		return nil, err
	}
	for _, r := range TreeRoots[:2] {
		if c := a.root.kids[r]; c == nil || !c.dir {
			return nil, fmt.Errorf("%w: no %s/ directory", ErrCorrupt, r)
		}
	}
	a.root.seal()
	return a, nil
}

// trustedSize is how much of an entry's announced size readEntry allocates
// at once; beyond it the buffer grows as data comes, so that a header
// announcing gigabytes costs nothing until they arrive.
const trustedSize = 64 << 20

// readEntry reads the current entry.
func readEntry(tr *tar.Reader, hdr *tar.Header, limit int64) ([]byte, error) {
	if hdr.Size > limit {
		return nil, fmt.Errorf("%w: entry %q is too large", ErrCorrupt, hdr.Name)
	}
	var b bytes.Buffer
	b.Grow(int(min(hdr.Size, trustedSize)) + bytes.MinRead)
	n, err := b.ReadFrom(io.LimitReader(tr, hdr.Size))
	if err != nil {
		return nil, err
	}
	if n != hdr.Size {
		return nil, io.ErrUnexpectedEOF
	}
	return b.Bytes(), nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "a symbolic link"
	case tar.TypeLink:
		return "a hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "a device"
	case tar.TypeFifo:
		return "a FIFO"
	}
	return fmt.Sprintf("of tar type %q", t)
}

func (a *Archive) parseManifest(b []byte) error {
	var probe struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("%w: %s is not JSON: %w", ErrCorrupt, ManifestName, err)
	}
	if probe.Format != Format {
		return fmt.Errorf("%w: %s says format %q, not %q", ErrCorrupt, ManifestName, probe.Format, Format)
	}
	if probe.FormatVersion > FormatVersion {
		return fmt.Errorf("%w: format version %d, newer than the %d this klp reads: read it with a newer klp", ErrCorrupt, probe.FormatVersion, FormatVersion)
	}
	if probe.FormatVersion < 1 {
		return fmt.Errorf("%w: format version %d", ErrCorrupt, probe.FormatVersion)
	}
	if err := json.Unmarshal(b, &a.manifest); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, ManifestName, err)
	}
	return nil
}

// insert adds n at name, creating the directories above it. A directory
// may be named after files below it created it; anything else named twice,
// or a file where a directory is needed, is an error.
func (a *Archive) insert(name string, n *node) error {
	parts := strings.Split(name, "/")
	dir := a.root
	for i, p := range parts[:len(parts)-1] {
		c := dir.kids[p]
		if c == nil {
			c = &node{name: p, dir: true, perm: 0o555, implied: true, kids: map[string]*node{}}
			dir.kids[p] = c
		}
		if !c.dir {
			return fmt.Errorf("%w: %q is a file and a directory", ErrCorrupt, strings.Join(parts[:i+1], "/"))
		}
		dir = c
	}
	leaf := parts[len(parts)-1]
	n.name = leaf
	if old := dir.kids[leaf]; old != nil {
		if !old.dir || !n.dir || !old.implied {
			return fmt.Errorf("%w: %q is there twice", ErrCorrupt, name)
		}
		old.perm, old.err, old.op, old.implied = n.perm, n.err, n.op, false
		return nil
	}
	if n.dir {
		n.kids = map[string]*node{}
	}
	dir.kids[leaf] = n
	return nil
}

// Archive is a snapshot read into memory. It is a [kernel.Files]: the
// captured tree, with its roots at /sys, /proc, /dev and /boot.
type Archive struct {
	manifest Manifest
	root     *node
	size     int64
}

// Manifest returns the snapshot's manifest.
func (a *Archive) Manifest() Manifest { return a.manifest }

// Size is the archive file's size ([Open]; 0 from [Read]).
func (a *Archive) Size() int64 { return a.size }

// node is a file or directory of the tree.
type node struct {
	name     string
	dir      bool
	implied  bool // a directory no entry named, created for its files
	perm     fs.FileMode
	data     []byte
	err      error  // what reading it met (an error record, or not captured)
	op       string // the operation err came from: open or read
	kids     map[string]*node
	children []*node // kids, sorted, once sealed
}

// seal turns the directories' maps into sorted slices.
func (n *node) seal() {
	if !n.dir {
		return
	}
	n.children = make([]*node, 0, len(n.kids))
	for _, c := range n.kids {
		n.children = append(n.children, c)
	}
	sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
	n.kids = nil
	for _, c := range n.children {
		c.seal()
	}
}
