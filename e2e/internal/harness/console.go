package harness

import (
	"fmt"
	"strconv"
	"strings"
)

// Check is one "KLPTEST <kernel> <scenario>/<check> PASS|FAIL <detail>"
// line of the guest console (see e2e/guest).
type Check struct {
	Name     string // "<scenario>/<check>"
	Scenario string
	Pass     bool
	Detail   string
}

// Console is the parsed serial console of one boot.
type Console struct {
	Lines  []string
	Checks []Check
	Notes  []string // "<scenario>/<key> <value>" from KLPNOTE lines
	Done   bool     // KLPTEST-DONE seen: the guest ran to the end
	// Passed and Failed are the guest's own counts, from KLPTEST-DONE
	// (-1 when it is missing or garbled).
	Passed, Failed int
	// scenarios maps a scenario to its range of lines [first, end).
	scenarios map[string][2]int
}

// ParseConsole parses the console lines of a guest that ran kernel. Lines
// of other kernels are ignored, so a stray line cannot pose as a result.
func ParseConsole(lines []string, kernel string) *Console {
	c := &Console{Lines: lines, scenarios: map[string][2]int{}, Passed: -1, Failed: -1}
	cur := ""
	closeScenario := func(i int) {
		if cur != "" {
			c.scenarios[cur] = [2]int{c.scenarios[cur][0], i}
		}
	}
	for i, l := range lines {
		// A kernel message may have been printed on the same line first.
		if j := strings.Index(l, "KLP"); j > 0 {
			l = l[j:]
		}
		f := strings.SplitN(l, " ", 5)
		if len(f) < 2 || f[1] != kernel {
			continue
		}
		switch {
		case f[0] == "KLPTEST-SCENARIO" && len(f) >= 3:
			closeScenario(i)
			cur = f[2]
			c.scenarios[cur] = [2]int{i, len(lines)}
		case f[0] == "KLPTEST" && len(f) >= 4 && (f[3] == "PASS" || f[3] == "FAIL"):
			ch := Check{Name: f[2], Pass: f[3] == "PASS"}
			ch.Scenario, _, _ = strings.Cut(ch.Name, "/")
			if len(f) == 5 {
				ch.Detail = f[4]
			}
			c.Checks = append(c.Checks, ch)
		case f[0] == "KLPNOTE" && len(f) >= 3:
			c.Notes = append(c.Notes, strings.Join(f[2:], " "))
		case f[0] == "KLPTEST-DONE":
			c.Done = true
			c.Passed, c.Failed = -1, -1
			if len(f) == 4 {
				p, perr := strconv.Atoi(f[2])
				n, ferr := strconv.Atoi(f[3])
				if perr == nil && ferr == nil {
					c.Passed, c.Failed = p, n
				}
			}
			closeScenario(i)
			cur = ""
		}
	}
	return c
}

// CheckCounts compares the guest's own counts of passed and failed checks
// (its KLPTEST-DONE line) with the check lines parsed from the console: a
// check line garbled on the way (a kernel message printed into it, a
// verdict that is neither PASS nor FAIL) would otherwise vanish, and with it
// a failure.
func (c *Console) CheckCounts() error {
	if !c.Done {
		return fmt.Errorf("no KLPTEST-DONE line")
	}
	if c.Passed < 0 || c.Failed < 0 {
		return fmt.Errorf("garbled KLPTEST-DONE line: no counts of passed and failed checks")
	}
	passed, failed := 0, 0
	for _, ch := range c.Checks {
		if ch.Pass {
			passed++
		} else {
			failed++
		}
	}
	if passed != c.Passed || failed != c.Failed {
		return fmt.Errorf("the guest counted %d passed and %d failed checks, the console shows %d and %d: a check line was lost or garbled",
			c.Passed, c.Failed, passed, failed)
	}
	return nil
}

// Excerpt returns the console lines of a scenario (its checks, and the
// kernel log that the guest prints after a failed scenario), at most max
// lines, the last ones.
func (c *Console) Excerpt(scenario string, max int) string {
	r, ok := c.scenarios[scenario]
	if !ok {
		return "(scenario not found on the console)"
	}
	ls := c.Lines[r[0]:r[1]]
	if len(ls) > max {
		ls = append([]string{fmt.Sprintf("... (%d lines skipped)", len(ls)-max)}, ls[len(ls)-max:]...)
	}
	return strings.Join(ls, "\n")
}

// Tail returns the last n lines, joined.
func Tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
