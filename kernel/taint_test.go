package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestTainted(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0\n")
	h, err := Open(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Tainted(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no tainted file: %v, want not exist", err)
	}
	path := filepath.Join(r.Proc, "sys", "kernel", "tainted")
	for _, c := range []struct {
		content string
		want    uint64
		err     error
	}{
		{"32768\n", 1 << TaintLivepatch, nil},
		{"0\n", 0, nil},
		{"K\n", 0, ErrParse},
		{"-1\n", 0, ErrParse},
	} {
		if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := h.Tainted()
		if v != c.want || !errors.Is(err, c.err) {
			t.Errorf("tainted %q: %d, %v; want %d, %v", c.content, v, err, c.want, c.err)
		}
	}
	for i, f := range TaintFlags {
		if f.Bit != uint(i) {
			t.Errorf("TaintFlags[%d] is bit %d", i, f.Bit)
		}
	}
	if f := TaintFlags[TaintLivepatch]; f.Letter != 'K' {
		t.Errorf("bit %d is %c, want K", TaintLivepatch, f.Letter)
	}
}
