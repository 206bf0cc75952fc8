package modinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klp-project/klp/internal/modcompress"
)

var sentinels = []error{ErrNotELF, ErrTruncated, ErrWrongArch, ErrNotModule, ErrMalformed, ErrTooLarge}

// checkParse is the property every input must satisfy: no panic (the fuzzer
// catches those), every error classified by a sentinel, and a Module that
// marshals and holds no names the kernel could not have.
func checkParse(t *testing.T, b []byte) {
	m, err := ParseBytes(b)
	if err != nil {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if len(m.Name) >= moduleNameLen && m.NameSource == NameFromThisModule {
		t.Fatalf("name of %d bytes", len(m.Name))
	}
	if m.Targets != nil {
		for _, fn := range m.Targets.Functions {
			if len(fn.Function) >= ksymNameLen {
				t.Fatalf("function name of %d bytes", len(fn.Function))
			}
		}
	}
}

func fuzzSeeds(tb testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/*.ko*")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no seeds: %v", err)
	}
	var seeds [][]byte
	for _, f := range files {
		seeds = append(seeds, readTestdata(tb, filepath.Base(f)))
	}
	for _, layout := range []string{"klp", "klpbuild", "klpbuild-init", "kpatch"} {
		seeds = append(seeds, synthPatch(tb, binary.LittleEndian, elf.EM_X86_64, uint32(elf.R_X86_64_64), layout, true))
	}
	seeds = append(seeds, synthPatch(tb, binary.BigEndian, elf.EM_S390, uint32(elf.R_390_64), "klp", true))
	// klp-build layouts: two objects with callbacks, and arrays that overlap.
	kb := twoObjects()
	seeds = append(seeds, kb.build(tb))
	kb.funcsAt = 1
	seeds = append(seeds, kb.build(tb))
	for _, layout := range []string{"klp-set7", "klp-states"} {
		seeds = append(seeds, synthPatch(tb, binary.LittleEndian, elf.EM_X86_64, uint32(elf.R_X86_64_64), layout, true))
	}
	return append(seeds, []byte(elf.ELFMAG))
}

// FuzzParse feeds arbitrary bytes to the parser. Seeds: the real test
// modules (plain and compressed), synthetic layouts, and the bare ELF
// magic. Run: go test -fuzz=FuzzParse -fuzztime=3m ./modinfo/
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkParse)
}

// TestAllocationBound mutates the test modules at random (deterministic
// seed) and checks that parsing an uncompressed image never allocates more
// than a small multiple of its size: hostile header fields must not size
// allocations.
func TestAllocationBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ms runtime.MemStats
	for _, seed := range fuzzSeeds(t) {
		if modcompress.Compressed(seed) != modcompress.None || len(seed) < 64 {
			continue
		}
		for i := 0; i < 300; i++ {
			b := bytes.Clone(seed)
			for n := rng.IntN(8) + 1; n > 0; n-- {
				// Favour the header and the section header table, where
				// the counts and sizes live.
				var off int
				switch rng.IntN(3) {
				case 0:
					off = rng.IntN(64)
				case 1:
					off = len(b) - 1 - rng.IntN(min(len(b), 64*40))
				default:
					off = rng.IntN(len(b))
				}
				b[off] = byte(rng.Uint32())
				if rng.IntN(4) == 0 {
					b[off] = 0xff
				}
			}
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			checkParse(t, b)
			runtime.ReadMemStats(&ms)
			if got, bound := ms.TotalAlloc-before, uint64(64*len(b)+1<<20); got > bound {
				t.Fatalf("parse of a %d-byte image allocated %d bytes (> %d)", len(b), got, bound)
			}
		}
	}
}
