package kernel

import (
	"errors"
	"testing"
)

func TestTrampolineName(t *testing.T) {
	// Read on Debian's 6.1: an fexit program on
	// schedule_timeout_interruptible (vmlinux's BTF object 1, type 62604).
	if got := TrampolineName(1, 62604); got != "bpf_trampoline_6442513548" {
		t.Errorf("got %s", got)
	}
}

type links []BPFLink

func (l links) BPFLinks() ([]BPFLink, error) { return l, nil }

func TestBPFLinksOfACopy(t *testing.T) {
	h, err := Open(tree(t, "6.1.0-56-cloud-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.BPFLinks(); !errors.Is(err, ErrNotLive) {
		t.Errorf("BPF programs of a copied tree: %v, want ErrNotLive", err)
	}
	d := h.WithBPF(links{{ID: 3, Attach: AttachFmodRet}})
	got, err := d.BPFLinks()
	if err != nil || len(got) != 1 || got[0].ID != 3 {
		t.Errorf("a double's programs: %v %v", got, err)
	}
	if _, err := h.BPFLinks(); !errors.Is(err, ErrNotLive) {
		t.Errorf("WithBPF changed the original handle: %v", err)
	}
	if d.Roots() != h.Roots() {
		t.Error("WithBPF changed the roots")
	}
}

func TestUsesTrampoline(t *testing.T) {
	for attach, want := range map[string]bool{AttachFentry: true, AttachFexit: true, AttachFmodRet: true, AttachLSM: true,
		AttachKprobe: false, AttachKretprobe: false, AttachKprobeMulti: false} {
		if got := (BPFLink{Attach: attach}).UsesTrampoline(); got != want {
			t.Errorf("%s: %v, want %v", attach, got, want)
		}
	}
}

// The running kernel's programs: as root, the list is read (probably
// empty on a test machine); as another user, the error is a permission
// error.
func TestBPFLinksRunningKernel(t *testing.T) {
	h := openRunning(t)
	_, err := h.BPFLinks()
	if err != nil && !errors.Is(err, ErrPermission) {
		t.Errorf("BPFLinks() = %v, want nil or ErrPermission", err)
	}
}
