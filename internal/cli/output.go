package cli

import (
	"io"
	"os"

	"github.com/klp-project/klp/internal/sysfile"
)

// rawOutput is klp's standard output or error when it is a regular file (a
// log that a script or a unit redirects to) or a terminal, written with raw
// system calls. An ordinary write enters Go's scheduler, which wakes its
// monitor thread when the process was idle, as a waiting klp is; on one slow
// CPU the monitor then takes the CPU before the write is made, finds klp in
// a system call and starts another thread to take its processor, then polls
// every 20 µs while the new thread runs: milliseconds of thread switches and
// a clone between the end of a wait and klp's exit, on a terminal the
// progress line's writes too (docs/performance.md).
//
// A regular file's write goes to the page cache and waits for no other
// process. A terminal's can wait for the terminal (flow control, a slow
// serial line), and a raw write then holds klp's processor meanwhile. klp
// writes to its terminal from the goroutine whose work it is (the wait
// prints its own progress line, a command its outcome), which waits for the
// terminal either way, and a Ctrl-C takes effect once that write returns in
// both cases; only the progress line's background count pauses with it. A
// pipe's reader is another program that may take as long as it likes over
// megabytes of JSON, so pipes keep the ordinary path, as does klp-exporter,
// whose scrapes must go on while it logs.
type rawOutput struct {
	f  *os.File // kept, so that its descriptor stays open
	fd int
}

func (o rawOutput) Write(p []byte) (int, error) {
	n, err := sysfile.RawWrite(o.fd, p)
	if err != nil {
		return n, &os.PathError{Op: "write", Path: o.f.Name(), Err: err}
	}
	return n, nil
}

// output is w, or a rawOutput when w is an *os.File open on a regular file
// or a terminal.
func output(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() && !isTerminal(f) {
		return w
	}
	return rawOutput{f: f, fd: int(f.Fd())}
}
