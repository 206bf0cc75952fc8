package cli

import (
	"io"
	"os"

	"github.com/klp-project/klp/internal/sysfile"
)

// fileOutput is klp's standard output or error when it is a regular file
// (a log that a script or a unit redirects to), written with raw system
// calls. An ordinary write enters Go's scheduler, which wakes its monitor
// thread when the process was idle, as a waiting klp is; on one slow CPU
// the monitor then takes the CPU before the write is made, finds klp in a
// system call and starts another thread to take its processor: milliseconds
// of thread switches, and a clone, between the end of a wait and klp's exit
// (docs/performance.md). A regular file's write goes to the page cache and
// waits for no other process; a pipe's or a terminal's can wait for as long
// as its reader likes, so those keep the ordinary path.
type fileOutput struct {
	f  *os.File // kept, so that its descriptor stays open
	fd int
}

func (o fileOutput) Write(p []byte) (int, error) {
	n, err := sysfile.RawWrite(o.fd, p)
	if err != nil {
		return n, &os.PathError{Op: "write", Path: o.f.Name(), Err: err}
	}
	return n, nil
}

// output is w, or a fileOutput when w is an *os.File open on a regular file.
func output(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return w
	}
	return fileOutput{f: f, fd: int(f.Fd())}
}
