package snapshot

import (
	"bytes"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// recordKind says what a packed record holds.
type recordKind uint8

const (
	recordData        recordKind = iota // PATH =SIZE\nBYTES\n
	recordError                         // PATH !OP ERROR MODE\n
	recordPlaceholder                   // PATH ? MODE\n
)

// record is one packed record.
type record struct {
	name string
	dir  bool // an error record of a directory (its name ends in "/")
	kind recordKind
	data []byte
	op   string // "open" or "read"
	err  error
	perm fs.FileMode
}

// maxSizeDigits bounds SIZE: no entry is larger than [Limits.Entry].
const maxSizeDigits = 10

func appendData(b []byte, name string, data []byte) []byte {
	b = append(b, name...)
	b = append(b, " ="...)
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, '\n')
	b = append(b, data...)
	return append(b, '\n')
}

func appendError(b []byte, name string, dir bool, op string, err error, perm fs.FileMode) []byte {
	b = append(b, name...)
	if dir {
		b = append(b, '/')
	}
	b = append(b, " !"...)
	b = append(b, op...)
	b = append(b, ' ')
	b = append(b, encodeError(err)...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(perm.Perm()), 8)
	return append(b, '\n')
}

func appendPlaceholder(b []byte, name string, perm fs.FileMode) []byte {
	b = append(b, name...)
	b = append(b, " ? "...)
	b = strconv.AppendUint(b, uint64(perm.Perm()), 8)
	return append(b, '\n')
}

// parsePacked calls fn with each record of b, in order. The data of a data
// record is a slice of b. Any deviation from the grammar is an error
// wrapping [ErrCorrupt] that says where.
func parsePacked(b []byte, fn func(record) error) error {
	off := 0
	for off < len(b) {
		r, n, err := parseRecord(b[off:])
		if err != nil {
			return fmt.Errorf("%w: packed record at byte %d: %w", ErrCorrupt, off, err)
		}
		if err := fn(r); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// parseRecord parses the record at the start of b and returns it with its
// length.
func parseRecord(b []byte) (record, int, error) {
	var r record
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 || sp+1 >= len(b) {
		return r, 0, fmt.Errorf("no name")
	}
	r.name = string(b[:sp])
	if strings.HasSuffix(r.name, "/") {
		r.dir, r.name = true, strings.TrimSuffix(r.name, "/")
	}
	if err := ValidName(r.name); err != nil {
		return r, 0, err
	}
	rest := b[sp+1:]
	switch rest[0] {
	case '=':
		nl := bytes.IndexByte(rest, '\n')
		if nl < 2 || nl-1 > maxSizeDigits || r.dir {
			return r, 0, fmt.Errorf("%s: bad size", r.name)
		}
		size, err := strconv.ParseUint(string(rest[1:nl]), 10, 63)
		if err != nil || (rest[1] == '0' && nl > 2) {
			return r, 0, fmt.Errorf("%s: bad size %q", r.name, rest[1:nl])
		}
		start := sp + 1 + nl + 1
		if uint64(len(b)-start) < size+1 {
			return r, 0, fmt.Errorf("%s: %d bytes announced, the entry ends first", r.name, size)
		}
		end := start + int(size)
		if b[end] != '\n' {
			return r, 0, fmt.Errorf("%s: no newline after its %d bytes", r.name, size)
		}
		r.kind, r.data = recordData, b[start:end:end]
		return r, end + 1, nil
	case '!':
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return r, 0, fmt.Errorf("%s: unterminated error record", r.name)
		}
		line := string(rest[1:nl])
		op, line, ok := strings.Cut(line, " ")
		if !ok || (op != "open" && op != "read") {
			return r, 0, fmt.Errorf("%s: bad operation %.20q", r.name, op)
		}
		var field string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return r, 0, fmt.Errorf("%s: bad error text", r.name)
			}
			field, line = q, line[len(q):]
			if !strings.HasPrefix(line, " ") {
				return r, 0, fmt.Errorf("%s: no mode", r.name)
			}
			line = line[1:]
		} else if field, line, ok = strings.Cut(line, " "); !ok {
			return r, 0, fmt.Errorf("%s: no mode", r.name)
		}
		e, err := decodeError(field)
		if err != nil {
			return r, 0, fmt.Errorf("%s: %w", r.name, err)
		}
		perm, err := parsePerm(line)
		if err != nil {
			return r, 0, fmt.Errorf("%s: %w", r.name, err)
		}
		r.kind, r.op, r.err, r.perm = recordError, op, e, perm
		return r, sp + 1 + nl + 1, nil
	case '?':
		nl := bytes.IndexByte(rest, '\n')
		if nl < 2 || rest[1] != ' ' || r.dir {
			return r, 0, fmt.Errorf("%s: bad placeholder", r.name)
		}
		perm, err := parsePerm(string(rest[2:nl]))
		if err != nil {
			return r, 0, fmt.Errorf("%s: %w", r.name, err)
		}
		r.kind, r.perm = recordPlaceholder, perm
		return r, sp + 1 + nl + 1, nil
	}
	return r, 0, fmt.Errorf("%s: unknown record kind %q", r.name, rest[0])
}

func parsePerm(s string) (fs.FileMode, error) {
	if s == "" || len(s) > 4 {
		return 0, fmt.Errorf("bad mode %.10q", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("bad mode %.10q", s)
	}
	return fs.FileMode(v), nil
}
