package cli

import (
	"fmt"
	"io"
	"strings"
)

// confirm asks a yes/no question and reads one bounded line; anything but
// y or yes is no.
func confirm(in io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	answer, _ := readAnswer(in)
	return isYes(answer)
}

// readAnswer reads one line, one byte at a time: a buffered read would
// swallow input meant for the command run next (zypper asks its own
// question when -n is not given).
func readAnswer(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	// Bounded, so that a reader returning (0, nil) cannot spin forever.
	for range 4096 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSpace(b.String()), nil
			}
			if b.Len() < 1024 {
				b.WriteByte(buf[0])
			}
		}
		if err != nil {
			return strings.TrimSpace(b.String()), err
		}
	}
	return strings.TrimSpace(b.String()), nil
}

func isYes(s string) bool {
	s = strings.ToLower(s)
	return s == "y" || s == "yes"
}
