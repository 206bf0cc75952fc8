package benchdata

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Console line prefixes of the guest.
const (
	LinePrefix = "KLPBENCH"
	DoneLine   = "KLPBENCH-DONE"
)

// Guest is what one guest reported.
type Guest struct {
	Env     *GuestEnv
	Samples []Sample
	Notes   []string
	Done    bool // DoneLine seen: the guest ran to the end
}

// ParseConsole reads a guest's serial console. A kernel message may have
// been printed at the start of a line, so records are found anywhere in
// it; other lines are ignored. A record that does not decode is an error.
func ParseConsole(r io.Reader) (*Guest, error) {
	g := &Guest{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, LinePrefix)
		if i < 0 {
			continue
		}
		line = line[i:]
		if strings.HasPrefix(line, DoneLine) {
			g.Done = true
			continue
		}
		kind, payload, _ := strings.Cut(strings.TrimPrefix(line, LinePrefix+" "), " ")
		switch kind {
		case "env":
			var env GuestEnv
			if err := json.Unmarshal([]byte(payload), &env); err != nil {
				return g, fmt.Errorf("parse console line %d: env: %w", n, err)
			}
			g.Env = &env
		case "sample":
			var s Sample
			if err := json.Unmarshal([]byte(payload), &s); err != nil {
				return g, fmt.Errorf("parse console line %d: sample: %w", n, err)
			}
			g.Samples = append(g.Samples, s)
		case "note":
			g.Notes = append(g.Notes, payload)
		}
	}
	if err := sc.Err(); err != nil {
		return g, fmt.Errorf("parse console: %w", err)
	}
	return g, nil
}

// FormatRecord returns the console line of a record: kind is "env",
// "sample" or "note"; v is encoded as JSON unless it is a string.
func FormatRecord(kind string, v any) (string, error) {
	if s, ok := v.(string); ok {
		return LinePrefix + " " + kind + " " + strings.ReplaceAll(s, "\n", " "), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s record: %w", kind, err)
	}
	return LinePrefix + " " + kind + " " + string(b), nil
}
