package modcompress

import (
	"bytes"
	"strings"
	"testing"
)

// The helpers below build xz framing byte by byte. checkXZ reads framing
// only, so CRCs are left zero and the LZMA2 payloads are stored chunks.

func xzStreamHeader() []byte {
	return append(bytes.Clone(magicXZ), 0, 1, 0, 0, 0, 0) // check type 1: CRC32
}

func xzFooter() []byte {
	return []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'Y', 'Z'}
}

func putVLI(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// xzBlockHeader is a block header: the size byte, fields (flags and filter
// flags), zero padding to 4 and a CRC32.
func xzBlockHeader(fields ...byte) []byte {
	h := append([]byte{0}, fields...)
	for len(h)%4 != 0 {
		h = append(h, 0)
	}
	h = append(h, 0, 0, 0, 0)
	h[0] = byte(len(h)/4 - 1)
	return h
}

// lzma2Header is a block header with one LZMA2 filter of dictionary byte d.
func lzma2Header(d byte) []byte { return xzBlockHeader(0x00, 0x21, 0x01, d) }

// storedData is LZMA2 data of one uncompressed chunk of 3 bytes.
var storedData = []byte{0x01, 0x00, 0x02, 'a', 'b', 'c', 0x00}

// xzBlock is a block: header, LZMA2 data, padding to 4, CRC32 check.
func xzBlock(header, data []byte) []byte {
	b := append(bytes.Clone(header), data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return append(b, 0, 0, 0, 0)
}

// xzIndex is an index with one record per pair (unpadded, uncompressed).
func xzIndex(records ...[2]uint64) []byte {
	b := putVLI([]byte{0}, uint64(len(records)))
	for _, r := range records {
		b = putVLI(putVLI(b, r[0]), r[1])
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return append(b, 0, 0, 0, 0)
}

func xzStream(blocks ...[]byte) []byte {
	b := xzStreamHeader()
	var recs [][2]uint64
	for _, blk := range blocks {
		b = append(b, blk...)
		recs = append(recs, [2]uint64{uint64(len(blk)), 3})
	}
	b = append(b, xzIndex(recs...)...)
	return append(b, xzFooter()...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestCheckXZ(t *testing.T) {
	t.Parallel()
	const maxDict = 1 << 20
	good := xzStream(xzBlock(lzma2Header(16), storedData))
	badFooter := bytes.Clone(good)
	badFooter[len(badFooter)-1] = 'X'
	// An index whose records take 5 bytes: indicator, count, a 2-byte VLI,
	// a 1-byte VLI, then 3 bytes of padding.
	idx5 := cat(xzStreamHeader(), xzBlock(lzma2Header(16), storedData), xzIndex([2]uint64{200, 3}), xzFooter())
	// ... and 7 bytes: padding of 1.
	idx7 := cat(xzStreamHeader(), xzBlock(lzma2Header(16), storedData), xzIndex([2]uint64{200, 3}, [2]uint64{200 << 7, 3}), xzFooter())
	for _, tc := range []struct {
		name    string
		b       []byte
		maxDict uint64
		wantErr string // "" means no error
	}{
		{"empty input", nil, maxDict, "malformed stream header"},
		{"stream header only", xzStreamHeader(), maxDict, "truncated block"},
		{"one block", good, maxDict, ""},
		{"dictionary of exactly the maximum", good, 1 << 20, ""},
		{"dictionary one byte over the maximum", good, 1<<20 - 1, "dictionary of 1048576 bytes exceeds 1048575"},
		{"index padded by 3", idx5, maxDict, ""},
		{"index padded by 1", idx7, maxDict, ""},
		{"short garbage after a stream", cat(good, []byte("abc")), maxDict, "malformed stream header"},
		{"bad footer magic", badFooter, maxDict, "malformed stream footer"},
		{"huge dictionary in the second stream", cat(good, xzStream(xzBlock(lzma2Header(40), storedData))), maxDict, "dictionary"},
		// The walk measures paddings from the start of the block and of the
		// index, not from the start of the file (padding between streams
		// being a multiple of 4 is left to the decoder).
		{"second stream at an odd offset", cat(good, []byte{0}, good), maxDict, ""},
		{"block header past the end", cat(xzStreamHeader(), []byte{0x10, 0x00, 0x21}), maxDict, "truncated block header"},
		{"8-byte block header, 3 bytes left", cat(xzStreamHeader(), []byte{0x01, 0x00, 0x21}), maxDict, "truncated block header"},
		// The dictionary is refused as soon as the header is complete.
		{"huge dictionary, header ends the input", cat(xzStreamHeader(), lzma2Header(40)), maxDict, "dictionary"},
		{"no LZMA2 data", cat(xzStreamHeader(), lzma2Header(16)), maxDict, "truncated LZMA2 data"},
		// Header of 8 bytes: size, flags, id 0x21, size 1, and the property
		// byte would be the first byte of the CRC32.
		{"LZMA2 property in the CRC32", xzStream(xzBlock(xzBlockHeader(0x00, 0x21, 0x01), storedData)), maxDict, "malformed filter flags"},
		// Flags with both sizes (a 2-byte VLI and a 1-byte one), then the
		// filter: its property byte is the last byte before the CRC32.
		{"LZMA2 property ends the header", xzStream(xzBlock(xzBlockHeader(0xc0, 0x81, 0x01, 0x05, 0x21, 0x01, 16), storedData)), maxDict, ""},
		// An LZMA chunk with new properties (control 0xc0) has a 6-byte
		// header: control, unpacked size (2), packed size (2), properties.
		{"LZMA chunk with properties", xzStream(xzBlock(lzma2Header(16), []byte{0xc0, 0x00, 0x00, 0x00, 0x02, 0x5d, 0x05, 0x05, 0x05, 0x00})), maxDict, ""},
		{"LZMA chunk without properties", xzStream(xzBlock(lzma2Header(16), []byte{0x80, 0x00, 0x00, 0x00, 0x02, 0x05, 0x05, 0x05, 0x00})), maxDict, ""},
		{"LZMA chunk header cut", cat(xzStreamHeader(), lzma2Header(16), []byte{0x80, 0x00}), maxDict, "truncated LZMA2 chunk"},
		{"stored chunk header cut", cat(xzStreamHeader(), lzma2Header(16), []byte{0x01, 0x00}), maxDict, "truncated LZMA2 chunk"},
	} {
		err := checkXZ(tc.b, tc.maxDict)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: checkXZ = %v, want nil", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: checkXZ = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestVLI(t *testing.T) {
	t.Parallel()
	nine := append(bytes.Repeat([]byte{0xff}, 8), 0x01) // the longest: 9 bytes
	for _, tc := range []struct {
		name    string
		b       []byte
		want    uint64
		wantP   int
		wantErr string
	}{
		{"one byte", []byte{0x05, 0xff}, 5, 1, ""},
		{"two bytes", []byte{0xc8, 0x01}, 200, 2, ""},
		{"nine bytes", nine, 1<<57 - 1, 9, ""},
		{"ten bytes", append(bytes.Repeat([]byte{0x80}, 9), 0x01), 0, 0, "malformed integer"},
		{"empty", nil, 0, 0, "truncated integer"},
		{"cut", []byte{0x80}, 0, 0, "truncated integer"},
	} {
		v, p, err := vli(tc.b, 0)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: vli = %d, %d, %v, want %q", tc.name, v, p, err, tc.wantErr)
			}
			continue
		}
		if err != nil || v != tc.want || p != tc.wantP {
			t.Errorf("%s: vli = %#x, %d, %v, want %#x, %d", tc.name, v, p, err, tc.want, tc.wantP)
		}
	}
}
