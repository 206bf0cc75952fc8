package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/fakekernel"
)

// A regular file gets the raw writer; a pipe, a terminal or a buffer
// keeps its own.
func TestOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := output(f)
	if _, ok := w.(fileOutput); !ok {
		t.Fatalf("output(regular file) = %T, want fileOutput", w)
	}
	big := bytes.Repeat([]byte("klp\n"), 64<<10)
	if n, err := w.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, big) {
		t.Errorf("the file holds %d bytes (%v), want %d", len(got), err, len(big))
	}

	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()
	if w := output(pw); w != pw {
		t.Errorf("output(pipe) = %T, want the *os.File", w)
	}
	var buf bytes.Buffer
	if w := output(&buf); w != &buf {
		t.Errorf("output(buffer) = %T, want the buffer", w)
	}

	// A failed write names the file.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = output(ro).Write([]byte("x"))
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != path || !errors.Is(err, syscall.EBADF) {
		t.Errorf("write to a read-only descriptor: %v, want EBADF naming %s", err, path)
	}
}

// klp's own process keeps the signals for its whole life: a command's end
// cancels only that command's context, and the first SIGTERM cancels
// every command's.
func TestProcessInterruptible(t *testing.T) {
	first, stop := processInterruptible()
	stop()
	if first.Err() == nil {
		t.Fatal("stop did not cancel the command's context")
	}
	second, stop := processInterruptible()
	defer stop()
	if second.Err() != nil {
		t.Fatal("a command's end cancelled the next one")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the command's context")
	}
	if !errors.Is(processSignals().Err(), context.Canceled) {
		t.Errorf("the process's signal context: %v", processSignals().Err())
	}
}

// Commands take their context from Env.Interruptible, and end it.
func TestCommandsUseInterruptible(t *testing.T) {
	v := newVerbEnv(t, fakekernel.Options{})
	calls, stops := 0, 0
	v.env.Interruptible = func() (context.Context, context.CancelFunc) {
		calls++
		ctx, cancel := context.WithCancel(context.Background())
		return ctx, func() { stops++; cancel() }
	}
	if code := v.run("wait"); code != ExitOK || calls != 1 || stops != 1 {
		t.Errorf("wait: exit %d, Interruptible called %d time(s), ended %d; want 0, 1, 1 (stderr %q)", code, calls, stops, v.errOut)
	}
}
