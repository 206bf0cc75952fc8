package kmod

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
)

// KernelLog reads the log from its oldest record, keeping what is asked.
func TestKernelLog(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"sys", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := "6,1,1,-;klp_e2e_cmdline: tainting kernel with TAINT_LIVEPATCH\n" +
		"5,2,2,-;livepatch: 'klp_e2e_cmdline': starting patching transition\n" +
		" SUBSYSTEM=livepatch\n" +
		"7,3,3,-;livepatch: klp_try_switch_task: klp_e2e_busy:97 has an unreliable stack\n"
	if err := os.WriteFile(filepath.Join(root, "dev", "kmsg"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := New(h, Options{}).KernelLog(func(r KmsgRecord) bool { return strings.HasPrefix(r.Message, "livepatch: ") })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"livepatch: 'klp_e2e_cmdline': starting patching transition", "livepatch: klp_try_switch_task: klp_e2e_busy:97 has an unreliable stack"}
	if got := Messages(recs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q", got, want)
	}
	all, err := New(h, Options{}).KernelLog(nil)
	if err != nil || len(all) != 3 || all[2].Level != 7 {
		t.Errorf("every record: %+v %v", all, err)
	}
}

// historyless is a log source that can only be read from its end.
type historyless struct{}

func (historyless) OpenKmsg() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }

func TestKernelLogUnavailable(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"sys", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(h, Options{}).KernelLog(nil); !errors.Is(err, ErrKmsgUnavailable) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no kmsg: %v, want ErrKmsgUnavailable and not exist", err)
	}
	if _, err := New(h, Options{Kmsg: historyless{}}).KernelLog(nil); !errors.Is(err, ErrKmsgUnavailable) {
		t.Errorf("a source without history: %v, want ErrKmsgUnavailable", err)
	}
}
