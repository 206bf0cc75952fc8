package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// KmsgRecord is one record of the kernel log as /dev/kmsg presents it:
//
//	prio,seq,usec,flags[,caller=...];message
//	 KEY=value            (optional dictionary lines, start with a space)
//
// See Documentation/ABI/testing/dev-kmsg.
type KmsgRecord struct {
	Facility int           // prio >> 3; 0 is the kernel
	Level    int           // prio & 7; 0 emerg, 3 err, 4 warning, 5 notice, 6 info, 7 debug
	Seq      uint64        // 64-bit record sequence number; gaps mean lost records
	Time     time.Duration // monotonic time since boot (the usec field)
	Flags    string        // "-", or "c" for the start of a continued line
	Caller   string        // "T123"/"C1" when CONFIG_PRINTK_CALLER adds ",caller=..."
	Message  string        // the text, with the kernel's \xNN escapes undone
}

// Messages returns the message texts of recs.
func Messages(recs []KmsgRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Message
	}
	return out
}

// ParseKmsg parses records in /dev/kmsg's text format: what successive
// read(2)s of /dev/kmsg return, concatenated, one record per line. The
// continuation lines of a record, which start with a space and carry the
// dictionary (SUBSYSTEM=..., DEVICE=...), are skipped, as are empty lines.
// A malformed line does not stop parsing: ParseKmsg returns every record
// it could parse, and an error wrapping [ErrParse] for the first bad line.
func ParseKmsg(r io.Reader) ([]KmsgRecord, error) {
	sc := bufio.NewScanner(r)
	// A record is at most CONSOLE_EXT_LOG_MAX (8 KiB) but be generous.
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	var (
		recs     []KmsgRecord
		firstErr error
		lineNo   int
	)
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(line) == 0 || line[0] == ' ' {
			continue
		}
		rec, err := ParseKmsgRecord(line)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("kmsg line %d: %w", lineNo, err)
			}
			continue
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("read kmsg: %w", err)
	}
	return recs, firstErr
}

// ParseKmsgRecord parses one record; anything after the first newline
// (the dictionary) is ignored.
func ParseKmsgRecord(b []byte) (KmsgRecord, error) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	semi := bytes.IndexByte(b, ';')
	if semi < 0 {
		return KmsgRecord{}, fmt.Errorf("%w: kmsg record %q: no ';'", ErrParse, b)
	}
	fields := strings.Split(string(b[:semi]), ",")
	if len(fields) < 4 {
		return KmsgRecord{}, fmt.Errorf("%w: kmsg record %q: want prio,seq,usec,flags", ErrParse, b[:semi])
	}
	prio, err1 := strconv.ParseUint(fields[0], 10, 32)
	seq, err2 := strconv.ParseUint(fields[1], 10, 64)
	usec, err3 := strconv.ParseUint(fields[2], 10, 63)
	if err := errors.Join(err1, err2, err3); err != nil {
		return KmsgRecord{}, fmt.Errorf("%w: kmsg record %q: %w", ErrParse, b[:semi], err)
	}
	rec := KmsgRecord{
		Facility: int(prio >> 3),
		Level:    int(prio & 7),
		Seq:      seq,
		Time:     time.Duration(usec) * time.Microsecond,
		Flags:    fields[3],
		Message:  unescapeKmsg(b[semi+1:]),
	}
	for _, f := range fields[4:] {
		if v, ok := strings.CutPrefix(f, "caller="); ok {
			rec.Caller = v
		}
	}
	return rec, nil
}

// unescapeKmsg undoes the kernel's escaping: every byte < ' ', >= 127 and
// '\' itself is written as \xNN (msg_add_ext_text in printk.c).
func unescapeKmsg(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}
