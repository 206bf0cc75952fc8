package snapshot

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Writer collects the files of a snapshot and writes the archive. Names are
// archive paths (see [ValidName]); every method refuses a bad one and a
// name given twice. It is not safe for concurrent use: build packed
// records concurrently with [Records] and add them with [Writer.AddRecords].
type Writer struct {
	mtime   time.Time
	entries []tarEntry
	names   map[string]bool
	dirs    map[string]bool
	packed  [][]byte // chunks of packed records
	errs    []Error
	files   int
	bytes   int64
}

type tarEntry struct {
	name string
	dir  bool
	perm fs.FileMode
	data []byte
}

// Error is a file the capture could not read, as recorded.
type Error struct {
	Name string // archive path
	Dir  bool
	Err  error
	Perm fs.FileMode
}

// NewWriter returns an empty snapshot whose files carry mtime.
func NewWriter(mtime time.Time) *Writer {
	w := &Writer{mtime: mtime, names: map[string]bool{}, dirs: map[string]bool{}}
	for _, r := range TreeRoots[:2] { // sys and proc: a handle needs them
		w.entries = append(w.entries, tarEntry{name: r, dir: true, perm: 0o555})
		w.names[r], w.dirs[r] = true, true
	}
	return w
}

func (w *Writer) claim(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if w.names[name] {
		return fmt.Errorf("snapshot: %s added twice", name)
	}
	w.names[name] = true
	return nil
}

// Has reports whether name was added.
func (w *Writer) Has(name string) bool { return w.names[name] }

// File adds a file as an entry of its own.
func (w *Writer) File(name string, data []byte, perm fs.FileMode) error {
	if err := w.claim(name); err != nil {
		return err
	}
	w.entries = append(w.entries, tarEntry{name: name, perm: perm.Perm(), data: data})
	w.files++
	w.bytes += int64(len(data))
	return nil
}

// Dir adds a directory; one that holds files needs none (an empty one
// does).
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	if w.dirs[name] {
		return nil
	}
	if err := w.claim(name); err != nil {
		return err
	}
	w.dirs[name] = true
	w.entries = append(w.entries, tarEntry{name: name, dir: true, perm: perm.Perm()})
	return nil
}

// Records are packed records built apart from a [Writer] (by one worker of
// a concurrent capture), added with [Writer.AddRecords]. They are kept in
// chunks, so that a million records are never copied to grow a buffer.
type Records struct {
	chunks  [][]byte
	scratch []byte
	names   []string
	errs    []Error
	files   int
	bytes   int64
}

// chunkSize is the size of a chunk of records.
const chunkSize = 1 << 20

// add copies one encoded record into the chunks.
func (r *Records) add(rec []byte) {
	if len(r.chunks) == 0 || cap(r.chunks[len(r.chunks)-1])-len(r.chunks[len(r.chunks)-1]) < len(rec) {
		r.chunks = append(r.chunks, make([]byte, 0, max(chunkSize, len(rec))))
	}
	last := &r.chunks[len(r.chunks)-1]
	*last = append(*last, rec...)
}

// Data adds a file's content.
func (r *Records) Data(name string, data []byte) error {
	if err := ValidName(name); err != nil {
		return err
	}
	r.scratch = appendData(r.scratch[:0], name, data)
	r.add(r.scratch)
	r.names = append(r.names, name)
	r.files++
	r.bytes += int64(len(data))
	return nil
}

// Error records a file (or, with dir, a directory) that exists, whose open
// or read (op) failed with err.
func (r *Records) Error(name string, dir bool, op string, err error, perm fs.FileMode) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if op != "open" && op != "read" {
		return fmt.Errorf("snapshot: %s: operation %q is neither open nor read", name, op)
	}
	r.scratch = appendError(r.scratch[:0], name, dir, op, err, perm)
	r.add(r.scratch)
	r.names = append(r.names, name)
	r.errs = append(r.errs, Error{Name: name, Dir: dir, Err: err, Perm: perm})
	return nil
}

// Placeholder records a file that exists but whose content is not
// captured: reading it gives [ErrNotCaptured].
func (r *Records) Placeholder(name string, perm fs.FileMode) error {
	if err := ValidName(name); err != nil {
		return err
	}
	r.scratch = appendPlaceholder(r.scratch[:0], name, perm)
	r.add(r.scratch)
	r.names = append(r.names, name)
	return nil
}

// Counts returns how many files the records hold content of, and their
// bytes.
func (r *Records) Counts() (files int, bytes int64) { return r.files, r.bytes }

// Len is the size of the records.
func (r *Records) Len() int {
	n := 0
	for _, c := range r.chunks {
		n += len(c)
	}
	return n
}

// AddRecords adds packed records.
func (w *Writer) AddRecords(r *Records) error {
	for _, n := range r.names {
		if w.names[n] {
			return fmt.Errorf("snapshot: %s added twice", n)
		}
	}
	for _, n := range r.names {
		w.names[n] = true
	}
	w.packed = append(w.packed, r.chunks...)
	w.errs = append(w.errs, r.errs...)
	w.files += r.files
	w.bytes += r.bytes
	return nil
}

// Errors returns the error records, in the order they were added.
func (w *Writer) Errors() []Error { return w.errs }

// Counts returns how many files hold content, and their bytes.
func (w *Writer) Counts() (files int, bytes int64) { return w.files, w.bytes }

// WriteTo writes the archive, with m as its manifest, to out: zstd over
// tar, manifest.json first, then the directories and files in name order,
// then the packed records. It returns the bytes written.
func (w *Writer) WriteTo(out io.Writer, m *Manifest) (int64, error) {
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	cw := &countWriter{w: out}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	tw := tar.NewWriter(zw)
	put := func(name string, typ byte, perm fs.FileMode, data []byte) error {
		hdr := &tar.Header{Name: name, Typeflag: typ, Mode: int64(perm.Perm()), Size: int64(len(data)), ModTime: w.mtime, Format: tar.FormatPAX}
		if typ == tar.TypeDir {
			hdr.Name += "/"
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = put(ManifestName, tar.TypeReg, 0o644, append(mj, '\n'))
	sort.Slice(w.entries, func(i, j int) bool { return w.entries[i].name < w.entries[j].name })
	for _, e := range w.entries {
		if err != nil {
			break
		}
		if e.dir {
			err = put(e.name, tar.TypeDir, e.perm, nil)
		} else {
			err = put(e.name, tar.TypeReg, e.perm, e.data)
		}
	}
	if err == nil {
		size := int64(0)
		for _, c := range w.packed {
			size += int64(len(c))
		}
		err = tw.WriteHeader(&tar.Header{Name: PackedName, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: w.mtime, Format: tar.FormatPAX})
		for _, c := range w.packed {
			if err != nil {
				break
			}
			_, err = tw.Write(c)
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
