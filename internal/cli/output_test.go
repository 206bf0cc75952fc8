package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
)

// A regular file and a terminal get the raw writer; a pipe or a buffer
// keeps its own.
func TestOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := output(f)
	if _, ok := w.(rawOutput); !ok {
		t.Fatalf("output(regular file) = %T, want rawOutput", w)
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

	// A terminal: what klp writes to it arrives whole at the other end.
	master, tty := openPTY(t)
	w = output(tty)
	if _, ok := w.(rawOutput); !ok {
		t.Fatalf("output(terminal) = %T, want rawOutput", w)
	}
	line := []byte("\r\033[Klp_demo: patched (12ms)")
	if n, err := w.Write(line); n != len(line) || err != nil {
		t.Fatalf("Write to the terminal = %d, %v", n, err)
	}
	got := make([]byte, 0, len(line))
	for len(got) < len(line) {
		b := make([]byte, 64)
		n, err := master.Read(b)
		if err != nil {
			t.Fatalf("read the terminal's master: %v", err)
		}
		got = append(got, b[:n]...)
	}
	if !bytes.Equal(got, line) {
		t.Errorf("the terminal got %q, want %q", got, line)
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

// openPTY opens a pseudo-terminal without echo or output processing: its
// master end, and the terminal a program would write to.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return master, tty
}
