package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The guest sends files to the host on the console (the klp-snapshot
// scenario's archive and what klp printed live), one line each so that the
// console's line protocol carries them:
//
//	KLPFILE <kernel> <name> BEGIN <size> <sha256>
//	KLPFILE <kernel> <name> DATA <base64 of up to 57 bytes>
//	KLPFILE <kernel> <name> END
//
// The host checks the size and the checksum: a line that a kernel message
// broke, or one lost, fails the file rather than alter it.
const fileMarker = "KLPFILE"

// fileChunk is how many bytes one DATA line carries (76 base64 characters).
const fileChunk = 57

// SendFile writes data as the console lines of the file name.
func SendFile(w io.Writer, kernel, name string, data []byte) error {
	if name == "" || strings.ContainsAny(name, " \n") {
		return fmt.Errorf("send file %q: a name without spaces", name)
	}
	sum := sha256.Sum256(data)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s BEGIN %d %s\n", fileMarker, kernel, name, len(data), hex.EncodeToString(sum[:]))
	for off := 0; off < len(data); off += fileChunk {
		end := min(off+fileChunk, len(data))
		fmt.Fprintf(&b, "%s %s %s DATA %s\n", fileMarker, kernel, name, base64.StdEncoding.EncodeToString(data[off:end]))
	}
	fmt.Fprintf(&b, "%s %s %s END\n", fileMarker, kernel, name)
	_, err := w.Write(b.Bytes())
	return err
}

// fileReceiver assembles the files of a console.
type fileReceiver struct {
	open  map[string]*incoming
	files map[string][]byte
	errs  map[string]error
}

type incoming struct {
	size int
	sum  string
	data bytes.Buffer
	err  error
}

func newFileReceiver() *fileReceiver {
	return &fileReceiver{open: map[string]*incoming{}, files: map[string][]byte{}, errs: map[string]error{}}
}

// line takes the fields of a KLPFILE line after the kernel: name, kind and
// the rest.
func (r *fileReceiver) line(name, kind, rest string) {
	in := r.open[name]
	switch kind {
	case "BEGIN":
		f := strings.Fields(rest)
		size := -1
		if len(f) == 2 {
			size, _ = strconv.Atoi(f[0])
		}
		in = &incoming{size: size}
		if size < 0 {
			in.err = fmt.Errorf("bad BEGIN line %q", rest)
		} else {
			in.sum = f[1]
		}
		r.open[name] = in
		delete(r.files, name)
		delete(r.errs, name)
	case "DATA":
		if in == nil {
			r.errs[name] = fmt.Errorf("DATA line outside BEGIN and END")
			return
		}
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil && in.err == nil {
			in.err = fmt.Errorf("a broken DATA line: %w", err)
		}
		in.data.Write(b)
	case "END":
		if in == nil {
			r.errs[name] = fmt.Errorf("END line without BEGIN")
			return
		}
		delete(r.open, name)
		sum := sha256.Sum256(in.data.Bytes())
		switch {
		case in.err != nil:
			r.errs[name] = in.err
		case in.data.Len() != in.size:
			r.errs[name] = fmt.Errorf("%d bytes received, %d sent", in.data.Len(), in.size)
		case hex.EncodeToString(sum[:]) != in.sum:
			r.errs[name] = fmt.Errorf("checksum mismatch")
		default:
			r.files[name] = append([]byte{}, in.data.Bytes()...)
		}
	}
}

// finish reports the files that never ended.
func (r *fileReceiver) finish() {
	for name := range r.open {
		r.errs[name] = fmt.Errorf("no END line (the guest stopped sending)")
	}
}

// Command is one command the guest ran, as it sends it to the host (the
// klp-snapshot scenario): the host runs the same against the snapshot.
type Command struct {
	Prog   string   `json:"prog"` // klp or kgr
	Args   []string `json:"args"`
	Code   int      `json:"code"`
	Stdout string   `json:"stdout"`
	Stderr string   `json:"stderr"`
}

// scannedCount is the task count of klp's blocking documents.
var scannedCount = regexp.MustCompile(`"tasks_scanned": ([0-9]+)`)

// maxKlpThreads bounds the threads of one klp process.
const maxKlpThreads = 16

// SameOutput reports whether klp printed the same live (want) and from a
// snapshot (got). One number may differ: tasks_scanned counts every task,
// the klp process reading them included: live, the klp that answers; in a
// snapshot, the klp that took it, whose threads the Go runtime may have
// made more or fewer. It may differ by a klp process's threads at most.
func SameOutput(want, got string) bool {
	if want == got {
		return true
	}
	wn, gn := scannedCount.FindAllStringSubmatch(want, -1), scannedCount.FindAllStringSubmatch(got, -1)
	if len(wn) != len(gn) || len(wn) == 0 {
		return false
	}
	for i := range wn {
		a, _ := strconv.Atoi(wn[i][1])
		b, _ := strconv.Atoi(gn[i][1])
		if a-b > maxKlpThreads || b-a > maxKlpThreads {
			return false
		}
	}
	return scannedCount.ReplaceAllString(want, `"tasks_scanned": N`) == scannedCount.ReplaceAllString(got, `"tasks_scanned": N`)
}
