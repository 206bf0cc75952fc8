package livepatch

import "strings"

// FrameModule returns the module of a stack frame: "[<0>] f+0x1/0x2 [mod]"
// gives "mod"; vmlinux frames give "".
func FrameModule(frame string) string {
	frame = strings.TrimSpace(frame)
	if !strings.HasSuffix(frame, "]") {
		return ""
	}
	i := strings.LastIndex(frame, " [")
	if i < 0 {
		return ""
	}
	return frame[i+2 : len(frame)-1]
}
