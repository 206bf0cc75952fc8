// Package modcompress reads kernel module images that may be compressed.
//
// Distributions ship modules as .ko.xz, .ko.zst or .ko.gz (kbuild's
// CONFIG_MODULE_COMPRESS_*). The compression is detected from the magic bytes,
// never from the file name, because files get renamed and kmod itself sniffs
// the magic. Every decoder runs behind a size cap so that a decompression bomb
// fails with [ErrTooLarge] instead of exhausting memory, and the decoders'
// own window allocations are bounded before they are made.
package modcompress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/klp-project/klp/internal/sysfile"
)

// DefaultLimit is the size cap used when a caller passes a limit <= 0. The
// largest in-tree modules are a few tens of MiB without debug info; 256 MiB
// leaves room for modules that keep DWARF while still stopping bombs early.
const DefaultLimit int64 = 256 << 20

// Caps on the decoders' history windows. They are allocated up front from a
// value in the stream header, so without a cap a 100-byte file could ask for
// gigabytes. kbuild uses xz --lzma2=dict=1MiB and zstd's default level; 64 MiB
// is xz's largest preset (-9) and 128 MiB is zstd's largest (--ultra -22).
const (
	maxXZDict     = 64 << 20
	maxZstdWindow = 128 << 20
)

// ErrTooLarge is returned when the (decompressed) module image would exceed
// the caller's limit. Callers can test for it with [errors.Is].
var ErrTooLarge = errors.New("module image exceeds size limit")

// Kind is the compression format of a module file.
type Kind uint8

// The compression formats the kernel's module loader and kmod understand.
const (
	None Kind = iota // a plain ELF (or anything that is not compressed)
	Gzip
	XZ
	Zstd
)

// String returns the name used in JSON output and messages.
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case XZ:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Compressed reports the compression format of b from its magic bytes. Only
// the first 6 bytes are looked at.
func Compressed(b []byte) Kind {
	switch {
	case bytes.HasPrefix(b, magicXZ):
		return XZ
	case bytes.HasPrefix(b, magicZstd):
		return Zstd
	case bytes.HasPrefix(b, magicGzip):
		return Gzip
	}
	return None
}

// ReadFile returns the module image in path, decompressed if it is xz, zstd
// or gzip, and as-is otherwise. Neither the file nor the decompressed image may
// exceed limit bytes (limit <= 0 means [DefaultLimit]); if one does, the error
// wraps [ErrTooLarge]. Errors include path.
func ReadFile(path string, limit int64) ([]byte, error) {
	limit = normLimit(limit)
	f, err := sysfile.OpenFollow(path)
	if err != nil {
		return nil, err // *PathError already names the file
	}
	defer f.Close()
	raw, err := ReadAllLimit(f, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	img, _, err := Decompress(raw, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return img, nil
}

// Decompress returns the module image in b. An uncompressed b is returned
// as-is (not copied). The result may not exceed limit bytes (limit <= 0 means
// [DefaultLimit]).
//
// The input is decoded twice: once to count the image's bytes, keeping
// none, and once into a buffer of exactly that size. A decompression bomb
// thus fails before any of its output is held, and a real image costs its
// own size once, not the up to three times that a growing buffer costs
// while it is copied into a larger one.
func Decompress(b []byte, limit int64) ([]byte, Kind, error) {
	kind := Compressed(b)
	if kind == None {
		if int64(len(b)) > normLimit(limit) {
			return nil, kind, fmt.Errorf("%d bytes: %w", len(b), ErrTooLarge)
		}
		return b, kind, nil
	}
	n, err := decode(b, kind, limit, io.Discard)
	if err != nil {
		return nil, kind, err
	}
	img := bytes.NewBuffer(make([]byte, 0, n))
	if m, err := decode(b, kind, limit, img); err != nil {
		return nil, kind, err
	} else if m != n {
		return nil, kind, fmt.Errorf("decode %s: %d bytes, then %d", kind, n, m)
	}
	return img.Bytes(), kind, nil
}

// decode decompresses b into w and returns the image's size.
func decode(b []byte, kind Kind, limit int64, w io.Writer) (int64, error) {
	rc, _, err := newReader(bytes.NewReader(b), kind, b, limit)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(w, rc)
}

// NewReader sniffs the compression format of r and returns a reader of the
// decompressed image, which fails with an error wrapping [ErrTooLarge] once
// more than limit bytes (limit <= 0 means [DefaultLimit]) have been produced.
// For an uncompressed stream the reader returns r's bytes unchanged, under the
// same limit. Close releases decoder resources; it does not close r.
//
// An xz stream's dictionary sizes can only be checked up front when the whole
// input is in memory; prefer [Decompress] for untrusted xz input.
func NewReader(r io.Reader, limit int64) (io.ReadCloser, Kind, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(magicXZ)) // short input: sniff what there is
	return newReader(br, Compressed(head), nil, limit)
}

// newReader builds the decoder for kind. whole is the complete compressed
// input when the caller has it, which lets the xz dictionary sizes be checked.
func newReader(r io.Reader, kind Kind, whole []byte, limit int64) (io.ReadCloser, Kind, error) {
	limit = normLimit(limit)
	var (
		dec     io.Reader
		closeFn func()
	)
	switch kind {
	case None:
		dec = r
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, kind, fmt.Errorf("decode gzip: %w", err)
		}
		dec, closeFn = zr, func() { zr.Close() }
	case XZ:
		if whole != nil {
			if err := checkXZ(whole, maxXZDict); err != nil {
				return nil, kind, fmt.Errorf("decode xz: %w", err)
			}
		}
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, kind, fmt.Errorf("decode xz: %w", err)
		}
		dec = zr
	case Zstd:
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderConcurrency(1), // no background goroutines to leak
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderMaxMemory(uint64(limit)),
		)
		if err != nil {
			return nil, kind, fmt.Errorf("decode zstd: %w", err)
		}
		dec, closeFn = zr, zr.Close
	default:
		return nil, kind, fmt.Errorf("unknown compression %v", kind)
	}
	return &limitedReader{r: dec, left: limit, limit: limit, kind: kind, closeFn: closeFn}, kind, nil
}

// limitedReader fails with ErrTooLarge rather than silently truncating as
// io.LimitReader would: a truncated module image must never look valid.
type limitedReader struct {
	r       io.Reader
	left    int64
	limit   int64
	kind    Kind
	closeFn func()
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, fmt.Errorf("decompressed %s image over %d bytes: %w", l.kind, l.limit, ErrTooLarge)
	}
	// Allow one byte past the limit to tell "exactly limit" from "more".
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - 1, fmt.Errorf("decompressed %s image over %d bytes: %w", l.kind, l.limit, ErrTooLarge)
	}
	switch {
	case err == nil, errors.Is(err, io.EOF), l.kind == None:
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// The frame asks for more memory than the limits allow.
		err = fmt.Errorf("decode %s: %w: %w", l.kind, ErrTooLarge, err)
	default:
		err = fmt.Errorf("decode %s: %w", l.kind, err)
	}
	return n, err
}

func (l *limitedReader) Close() error {
	if l.closeFn != nil {
		l.closeFn()
		l.closeFn = nil
	}
	return nil
}

// ReadAllLimit reads f to EOF, failing with ErrTooLarge past limit bytes.
// The size the file's Stat reports sizes the buffer, so a large file is read
// into one allocation; it is only a hint: what counts is what can be read.
func ReadAllLimit(f *os.File, limit int64) ([]byte, error) {
	buf := &bytes.Buffer{}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Size() <= limit {
		buf.Grow(int(fi.Size()) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("file over %d bytes: %w", limit, ErrTooLarge)
	}
	return buf.Bytes(), nil
}

func normLimit(limit int64) int64 {
	if limit <= 0 {
		return DefaultLimit
	}
	return limit
}
