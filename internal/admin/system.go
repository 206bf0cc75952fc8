package admin

import (
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// System is the read side of the use cases: one kernel, through one handle,
// and the views of it the reports need. Build it with [NewSystem]; it never
// changes the kernel.
type System struct {
	K   *kernel.Handle
	LP  livepatch.FS
	Mod *kmod.FS

	iface   livepatch.Interface
	backend backend
}

// NewSystem returns the read side for the kernel h stands for. The live
// patching interface (upstream, SLE 12's kGraft, or none) is looked up once
// here.
func NewSystem(h *kernel.Handle) *System {
	s := &System{K: h, LP: livepatch.New(h), Mod: kmod.New(h, kmod.Options{})}
	s.iface = s.LP.Interface()
	switch s.iface {
	case livepatch.InterfaceKGraft:
		s.backend = kgraftBackend{s.LP}
	case livepatch.InterfaceLivepatch:
		s.backend = upstreamBackend{lp: s.LP, mod: s.Mod}
	default:
		s.backend = noBackend{s.LP}
	}
	return s
}

// Interface is the kernel's live patching interface.
func (s *System) Interface() livepatch.Interface { return s.iface }

// Release is the kernel's release, read once.
func (s *System) Release() (string, error) { return s.K.Release() }

// Host is the machine's host name (/proc/sys/kernel/hostname), "" when
// unknown.
func (s *System) Host() string {
	h, err := s.K.ReadString(s.K.ProcPath("sys", "kernel", "hostname"))
	if err != nil {
		return ""
	}
	return h
}
