package main

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// The BPF programs of the scenarios are written with cilium/ebpf's asm
// package: no compiler, and each is a few instructions.

// bpfProg is a BPF program attached to a kernel function, and its link.
type bpfProg struct {
	prog   *ebpf.Program
	link   link.Link
	kind   string // "fentry", "fexit" or "fmod_ret"
	fn     string
	name   string
	progID ebpf.ProgramID
	linkID link.ID
}

// Close detaches the program.
func (p *bpfProg) Close() {
	if p == nil {
		return
	}
	if p.link != nil {
		p.link.Close()
		p.link = nil
	}
	if p.prog != nil {
		p.prog.Close()
		p.prog = nil
	}
}

// attachTracing loads insns as a tracing program of the given kind on
// vmlinux's function fn (resolved through /sys/kernel/btf/vmlinux) and
// attaches it with a BPF link.
func attachTracing(kind, fn, name string, insns asm.Instructions) (*bpfProg, error) {
	types := map[string]ebpf.AttachType{
		"fentry": ebpf.AttachTraceFEntry, "fexit": ebpf.AttachTraceFExit, "fmod_ret": ebpf.AttachModifyReturn,
	}
	at, ok := types[kind]
	if !ok {
		return nil, fmt.Errorf("attach %s: unknown kind", kind)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.Tracing, AttachType: at, AttachTo: fn,
		License: "GPL", Instructions: insns,
	})
	if err != nil {
		return nil, fmt.Errorf("load %s program on %s: %w", kind, fn, err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: at})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attach %s program to %s: %w", kind, fn, err)
	}
	p := &bpfProg{prog: prog, link: l, kind: kind, fn: fn, name: name}
	if info, err := prog.Info(); err == nil {
		p.progID, _ = info.ID()
	}
	if info, err := l.Info(); err == nil {
		p.linkID = info.ID
	}
	return p, nil
}

// attachNop attaches a program that does nothing (returns 0): an fentry
// or fexit program only observes, an fmod_ret program returning 0 lets
// the function run.
func attachNop(kind, fn, name string) (*bpfProg, error) {
	return attachTracing(kind, fn, name, asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	})
}

// attachFmodRetArg0 attaches an fmod_ret program to fn that makes fn
// return ret, without running it, when its first argument equals arg0, and
// lets it run otherwise.
func attachFmodRetArg0(fn, name string, arg0 int32, ret int32) (*bpfProg, error) {
	return attachTracing("fmod_ret", fn, name, asm.Instructions{
		// r1 is the context: the arguments as an array of u64.
		asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
		asm.Mov.Imm(asm.R0, 0),
		asm.JNE.Imm(asm.R2, arg0, "out"),
		asm.Mov.Imm(asm.R0, ret),
		asm.Return().WithSymbol("out"),
	})
}

// enumValue reads the value of an enumerator from the kernel's BTF.
func enumValue(enum, name string) (int64, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, fmt.Errorf("read kernel BTF: %w", err)
	}
	var e *btf.Enum
	if err := spec.TypeByName(enum, &e); err != nil {
		return 0, fmt.Errorf("enum %s: %w", enum, err)
	}
	for _, v := range e.Values {
		if v.Name == name {
			return int64(v.Value), nil
		}
	}
	return 0, errors.New("enum " + enum + " has no " + name)
}
