package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// BPFLink is a BPF program attached to a kernel function through a BPF
// link, as the bpf(2) system call describes it (what `bpftool link` shows).
type BPFLink struct {
	ID        uint32 // the link's id
	ProgramID uint32
	// Program is the program's name (at most 15 characters), "" when it
	// has none or it could not be read.
	Program string
	// Attach is how the program is attached: [AttachFentry],
	// [AttachFexit], [AttachFmodRet], [AttachLSM], [AttachKprobe],
	// [AttachKretprobe] or [AttachKprobeMulti].
	Attach string
	// Object and Function name the function: Object is "vmlinux" or a
	// module. Both are "" when the kernel does not say (kprobe links
	// before Linux 6.6, multi-kprobe links).
	Object, Function string
	// Trampoline is the kallsyms name of the BPF trampoline that calls an
	// fentry, fexit, fmod_ret or LSM program ("bpf_trampoline_<key>"):
	// what a stack through it shows. "" for the other kinds.
	Trampoline string
	// Override is true for a kprobe program that calls
	// bpf_override_return(): it makes the function return its own value,
	// without running it. It is known only when the program's
	// instructions could be read.
	Override bool
}

// The attach kinds of a [BPFLink].
const (
	AttachFentry      = "fentry"
	AttachFexit       = "fexit"
	AttachFmodRet     = "fmod_ret"
	AttachLSM         = "lsm"
	AttachKprobe      = "kprobe"
	AttachKretprobe   = "kretprobe"
	AttachKprobeMulti = "kprobe_multi"
)

// UsesTrampoline reports whether the program runs in a BPF trampoline
// (fentry, fexit, fmod_ret, LSM): a direct call from the function's ftrace
// call site, flag D in enabled_functions.
func (l BPFLink) UsesTrampoline() bool {
	switch l.Attach {
	case AttachFentry, AttachFexit, AttachFmodRet, AttachLSM:
		return true
	}
	return false
}

// BPFReader lists the BPF programs attached to kernel functions. The
// running kernel's is the bpf(2) system call (which needs CAP_SYS_ADMIN);
// a test double brings its own.
type BPFReader interface {
	BPFLinks() ([]BPFLink, error)
}

// BPFLinks lists the BPF programs attached to kernel functions. Only the
// running kernel can answer: on a copied tree or a snapshot the error
// wraps [ErrNotLive]. Without privilege it wraps [os.ErrPermission].
func (h *Handle) BPFLinks() ([]BPFLink, error) {
	if h.bpf == nil {
		return nil, fmt.Errorf("list BPF programs: %w", ErrNotLive)
	}
	return h.bpf.BPFLinks()
}

// WithBPF returns a copy of h whose BPF programs are r's: for a test double
// of the kernel.
func (h *Handle) WithBPF(r BPFReader) *Handle {
	c := *h
	c.bpf = r
	return &c
}

// liveBPF is the running kernel's [BPFReader]: it walks the BPF links with
// BPF_LINK_GET_NEXT_ID and names each target function from the BTF the
// kernel publishes (<sysfs>/kernel/btf/vmlinux, and each module's BTF
// object).
type liveBPF struct {
	vmlinuxBTF string
}

func (b liveBPF) BPFLinks() ([]BPFLink, error) {
	var (
		out     []BPFLink
		vmlinux *btf.Spec
		names   = map[uint32]*btfNames{}
	)
	spec := func(objID uint32) (*btfNames, error) {
		if n := names[objID]; n != nil {
			return n, nil
		}
		h, err := btf.NewHandleFromID(btf.ID(objID))
		if err != nil {
			return nil, err
		}
		defer h.Close()
		info, err := h.Info()
		if err != nil {
			return nil, err
		}
		var base *btf.Spec
		if info.IsModule() {
			if vmlinux == nil {
				if vmlinux, err = btf.LoadSpec(b.vmlinuxBTF); err != nil {
					return nil, err
				}
			}
			base = vmlinux
		}
		s, err := h.Spec(base)
		if err != nil {
			return nil, err
		}
		n := &btfNames{object: info.Name, spec: s}
		if info.IsVmlinux() {
			n.object = "vmlinux"
		}
		names[objID] = n
		return n, nil
	}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // gone meanwhile, or a kind this kernel cannot describe
		}
		l := BPFLink{ID: uint32(info.ID), ProgramID: uint32(info.Program)}
		switch info.Type {
		case link.TracingType:
			ti := info.Tracing()
			if ti == nil {
				continue
			}
			switch ebpf.AttachType(ti.AttachType) {
			case ebpf.AttachTraceFEntry:
				l.Attach = AttachFentry
			case ebpf.AttachTraceFExit:
				l.Attach = AttachFexit
			case ebpf.AttachModifyReturn:
				l.Attach = AttachFmodRet
			case ebpf.AttachLSMMac:
				l.Attach = AttachLSM
			default:
				continue // raw tracepoints, iterators: no function
			}
			l.Trampoline = TrampolineName(ti.TargetObjectId, uint32(ti.TargetBtfId))
			if n, err := spec(ti.TargetObjectId); err == nil {
				l.Object = n.object
				if t, err := n.spec.TypeByID(btf.TypeID(ti.TargetBtfId)); err == nil {
					l.Function = t.TypeName()
				}
			}
		case link.PerfEventType:
			pe := info.PerfEvent()
			if pe == nil {
				continue
			}
			switch pe.Type {
			case link.PerfEventKprobe:
				l.Attach = AttachKprobe
			case link.PerfEventKretprobe:
				l.Attach = AttachKretprobe
			default:
				continue
			}
			if kp := pe.Kprobe(); kp != nil && kp.Offset == 0 && kp.Function != "" {
				// A kprobe names its function "func" or "module:func".
				l.Object, l.Function = "vmlinux", kp.Function
				if mod, fn, ok := strings.Cut(kp.Function, ":"); ok {
					l.Object, l.Function = mod, fn
				}
			}
		case link.KprobeMultiType:
			l.Attach = AttachKprobeMulti
		default:
			continue
		}
		l.Program, l.Override = programOf(info.Program)
		out = append(out, l)
	}
	if err := it.Err(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return out, fmt.Errorf("list BPF programs: %w", ErrPermission)
		}
		return out, fmt.Errorf("list BPF programs: %w", err)
	}
	return out, nil
}

// TrampolineName returns the kallsyms name of the trampoline of a
// function of a kernel BTF object (bpf_trampoline_compute_key with no
// target program): bpf_trampoline_<object id << 32 | 1 << 31 | type id>.
func TrampolineName(btfObject, btfType uint32) string {
	return fmt.Sprintf("bpf_trampoline_%d", uint64(btfObject)<<32|1<<31|uint64(btfType))
}

// btfNames is one BTF object: vmlinux's or a module's.
type btfNames struct {
	object string
	spec   *btf.Spec
}

// programOf returns the name of a program and whether it calls
// bpf_override_return().
func programOf(id ebpf.ProgramID) (string, bool) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", false
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", false
	}
	override := false
	if insns, err := info.Instructions(); err == nil {
		for _, ins := range insns {
			if ins.IsBuiltinCall() && asm.BuiltinFunc(ins.Constant) == asm.FnOverrideReturn {
				override = true
			}
		}
	}
	return info.Name, override
}
