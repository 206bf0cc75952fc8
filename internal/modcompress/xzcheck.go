package modcompress

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkXZ walks the framing of the xz streams in b (stream headers, block
// headers, LZMA2 chunk headers, index, footers) without decoding anything and
// checks that no LZMA2 filter asks for a dictionary larger than maxDict.
//
// Why: github.com/ulikunitz/xz allocates each block's dictionary at the size
// its header declares (up to 4 GiB), before producing a single byte, so the
// output size cap alone cannot stop a tiny hostile file. A block's header can
// only be found by walking the compressed data before it, hence the walk.
// Format: https://tukaani.org/xz/xz-file-format.txt (sections 2 and 3) and the
// LZMA2 chunk framing (control byte, sizes).
func checkXZ(b []byte, maxDict uint64) error {
	p := 0
	for streams := 0; ; streams++ {
		if p == len(b) && streams > 0 {
			return nil
		}
		if len(b)-p < 12 || string(b[p:p+6]) != string(magicXZ) {
			return errors.New("malformed stream header")
		}
		check := b[p+7] & 0x0f
		p += 12
		var err error
		if p, err = walkXZBlocks(b, p, check, maxDict); err != nil {
			return err
		}
		// Index: indicator byte 0 (already checked by the caller), number of
		// records, records of two VLIs, padding to 4, CRC32.
		start := p
		p++
		var n uint64
		if n, p, err = vli(b, p); err != nil {
			return err
		}
		if n > uint64(len(b)) {
			return errors.New("malformed index")
		}
		for i := uint64(0); i < 2*n; i++ {
			if _, p, err = vli(b, p); err != nil {
				return err
			}
		}
		p += (4 - (p-start)%4) % 4
		p += 4 + 12 // index CRC32 and stream footer
		if p > len(b) || string(b[p-2:p]) != "YZ" {
			return errors.New("malformed stream footer")
		}
		// Stream padding: zero bytes, a multiple of 4.
		for p < len(b) && b[p] == 0 {
			p++
		}
	}
}

// walkXZBlocks walks blocks starting at p up to the index indicator and
// returns the indicator's offset.
func walkXZBlocks(b []byte, p int, check byte, maxDict uint64) (int, error) {
	checkSize := [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}[check]
	for {
		if p >= len(b) {
			return 0, errors.New("truncated block")
		}
		if b[p] == 0 {
			return p, nil // index indicator
		}
		blockStart := p
		hsize := (int(b[p]) + 1) * 4
		if len(b)-p < hsize {
			return 0, errors.New("truncated block header")
		}
		h := b[p : p+hsize-4] // without CRC32
		flags := h[1]
		q := 2
		var err error
		if flags&0x40 != 0 { // compressed size present; the walk below covers it anyway
			if _, q, err = vli(h, q); err != nil {
				return 0, err
			}
		}
		if flags&0x80 != 0 {
			if _, q, err = vli(h, q); err != nil {
				return 0, err
			}
		}
		for f := 0; f <= int(flags&3); f++ {
			var id, psize uint64
			if id, q, err = vli(h, q); err != nil {
				return 0, err
			}
			if psize, q, err = vli(h, q); err != nil {
				return 0, err
			}
			if psize > uint64(len(h)-q) {
				return 0, errors.New("malformed filter flags")
			}
			if id == 0x21 { // LZMA2: one property byte, the dictionary size
				if psize != 1 {
					return 0, errors.New("malformed LZMA2 properties")
				}
				if d := lzma2Dict(h[q]); d > maxDict {
					return 0, fmt.Errorf("dictionary of %d bytes exceeds %d", d, maxDict)
				}
			}
			q += int(psize)
		}
		p += hsize
		if p, err = walkLZMA2(b, p); err != nil {
			return 0, err
		}
		p += (4 - (p-blockStart)%4) % 4
		p += checkSize
	}
}

// walkLZMA2 skips LZMA2 chunks from p through the end-of-data marker.
func walkLZMA2(b []byte, p int) (int, error) {
	for {
		if p >= len(b) {
			return 0, errors.New("truncated LZMA2 data")
		}
		c := b[p]
		switch {
		case c == 0:
			return p + 1, nil
		case c == 1 || c == 2: // uncompressed chunk
			if len(b)-p < 3 {
				return 0, errors.New("truncated LZMA2 chunk")
			}
			p += 3 + int(binary.BigEndian.Uint16(b[p+1:])) + 1
		case c >= 0x80: // LZMA chunk
			hdr := 5
			if c >= 0xc0 { // state reset with new properties
				hdr = 6
			}
			if len(b)-p < hdr {
				return 0, errors.New("truncated LZMA2 chunk")
			}
			p += hdr + int(binary.BigEndian.Uint16(b[p+3:])) + 1
		default:
			return 0, fmt.Errorf("invalid LZMA2 control byte %#x", c)
		}
	}
}

// lzma2Dict decodes the LZMA2 dictionary-size property byte.
func lzma2Dict(p byte) uint64 {
	if p >= 40 {
		return 1<<32 - 1 // 40 is the maximum; larger values are invalid
	}
	return uint64(2|p&1) << (p/2 + 11)
}

// vli decodes an xz variable-length integer (at most 9 bytes).
func vli(b []byte, p int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if p >= len(b) {
			return 0, 0, errors.New("truncated integer")
		}
		c := b[p]
		p++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, p, nil
		}
	}
	return 0, 0, errors.New("malformed integer")
}
