// Package kallsyms parses /proc/kallsyms for livepatch preflight checks.
//
// A livepatch names each function it replaces by (object, name, sympos). The
// kernel resolves it the way klp_find_object_symbol does: it walks the
// symbols of that object (the core kernel for "vmlinux", else the module) in
// kallsyms order, counts those with the name, whatever their type, and takes
// the sympos'th, or requires exactly one when sympos is 0. [Scan] counts the
// same way so that preflight can predict "not found", "unresolvable
// ambiguity" and "symbol position not found" before loading anything.
//
// The file is about 10 MB, so Scan streams it and keeps only the (object,
// name) pairs the caller asks for, plus a symbol count per object. Opening the
// file (under an injected /proc root) is the caller's job.
package kallsyms

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Vmlinux is the object name of symbols without a [module] tag.
const Vmlinux = "vmlinux"

// MaxOccurrences bounds how many occurrences of one wanted symbol are kept
// with their address and type; Count stays exact beyond it.
const MaxOccurrences = 64

// maxLine bounds one line. Real lines are under 600 bytes (a 512-byte
// KSYM_NAME_LEN name, an address, a type and a module name); longer ones are
// counted as malformed and skipped.
const maxLine = 4096

// Errors returned by [Result.Resolve], mirroring klp_find_object_symbol's
// messages. Test with [errors.Is].
var (
	ErrNotFound      = errors.New("symbol not found")
	ErrAmbiguous     = errors.New("unresolvable ambiguity for symbol")
	ErrSymposMissing = errors.New("symbol position not found")
)

// Key names a symbol within an object.
type Key struct {
	Object string // "vmlinux" or a module name
	Name   string
}

// Occurrence is one kallsyms line for a symbol.
type Occurrence struct {
	// Addr is zero when the reader may not see addresses: kptr_restrict, or
	// not root (CAP_SYSLOG). Counts are right either way.
	Addr uint64
	// Type is the nm-style type letter: 't'/'T' for text, 'd'/'D' data, ...
	Type byte
}

// Entry is what was found for one wanted [Key].
type Entry struct {
	// Count is the number of occurrences in kallsyms order.
	Count int
	// Occurrences holds the first MaxOccurrences of them; Occurrences[i] is
	// sympos i+1.
	Occurrences []Occurrence
}

// Result is the outcome of a [Scan].
type Result struct {
	// Symbols has one entry for every wanted Key, with Count 0 when absent.
	Symbols map[Key]*Entry
	// Objects counts the symbols of every object seen. An object missing
	// here (a module that is not loaded) has no symbols to resolve yet.
	Objects map[string]int
	// Lines is the number of lines read; Malformed how many were skipped.
	Lines, Malformed int
	// AddressesHidden is true when every well-formed line had address 0,
	// which is what kptr_restrict (or reading as non-root) gives.
	AddressesHidden bool
}

// Scan reads kallsyms lines ("addr type name" or "addr type name\t[module]")
// from r and counts the wanted symbols. Malformed lines are counted and
// skipped; only a read error from r is returned.
func Scan(r io.Reader, want []Key) (*Result, error) {
	res := &Result{Symbols: make(map[Key]*Entry, len(want)), Objects: map[string]int{}}
	// Index the wanted names by name first, so that the hot path does a
	// single map lookup on a []byte (no allocation) for unwanted lines.
	byName := map[string]bool{}
	for _, k := range want {
		res.Symbols[k] = &Entry{}
		byName[k.Name] = true
	}
	// Object names repeat on every line of a module; intern them.
	objNames := map[string]string{Vmlinux: Vmlinux}
	sawAddr, sawLine := false, false

	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			res.Lines++
			res.Malformed++
			for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of it
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read kallsyms: %w", err)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			continue
		}
		if len(line) > 0 {
			res.Lines++
			addr, typ, name, obj, ok := parseLine(line)
			if !ok {
				res.Malformed++
			} else {
				sawLine = true
				if addr != 0 {
					sawAddr = true
				}
				o, ok := objNames[string(obj)] // no allocation for the lookup
				if !ok {
					o = string(obj)
					objNames[o] = o
				}
				res.Objects[o]++
				if byName[string(name)] {
					if e := res.Symbols[Key{o, string(name)}]; e != nil {
						e.Count++
						if len(e.Occurrences) < MaxOccurrences {
							e.Occurrences = append(e.Occurrences, Occurrence{Addr: addr, Type: typ})
						}
					}
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("read kallsyms: %w", err)
		}
	}
	res.AddressesHidden = sawLine && !sawAddr
	return res, nil
}

// parseLine splits "ffffffff81000000 T _stext" or
// "ffffffffc0a01000 t foo\t[mod]". The object is "vmlinux" without a tag.
func parseLine(line []byte) (addr uint64, typ byte, name, obj []byte, ok bool) {
	line = bytes.TrimRight(line, "\r\n")
	f0, rest := cut(line)
	f1, rest := cut(rest)
	f2, rest := cut(rest)
	f3, rest := cut(rest)
	if len(f0) == 0 || len(f1) != 1 || len(f2) == 0 || len(bytes.TrimSpace(rest)) != 0 {
		return 0, 0, nil, nil, false
	}
	a, err := strconv.ParseUint(string(f0), 16, 64)
	if err != nil {
		return 0, 0, nil, nil, false
	}
	obj = []byte(Vmlinux)
	if len(f3) > 0 {
		if len(f3) < 3 || f3[0] != '[' || f3[len(f3)-1] != ']' {
			return 0, 0, nil, nil, false
		}
		obj = f3[1 : len(f3)-1]
	}
	return a, f1[0], f2, obj, true
}

// cut returns the first space- or tab-separated field of b and the rest.
func cut(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// Count returns how many times name occurs in object. It is 0 for a pair
// that was not asked for.
func (r *Result) Count(object, name string) int {
	if e := r.Symbols[Key{object, name}]; e != nil {
		return e.Count
	}
	return 0
}

// Resolve predicts klp_find_object_symbol for (object, name, sympos):
// nil if the kernel will find exactly one symbol, else an error wrapping
// [ErrNotFound], [ErrAmbiguous] or [ErrSymposMissing]. The pair must have
// been asked for in [Scan].
func (r *Result) Resolve(object, name string, sympos uint64) error {
	n := uint64(r.Count(object, name))
	switch {
	case n == 0:
		return fmt.Errorf("%w: %q in object %q", ErrNotFound, name, object)
	case sympos == 0 && n > 1:
		return fmt.Errorf("%w: %q in object %q occurs %d times, sympos needed", ErrAmbiguous, name, object, n)
	case sympos > n:
		return fmt.Errorf("%w: position %d for %q in object %q, which occurs %d times", ErrSymposMissing, sympos, name, object, n)
	}
	return nil
}
