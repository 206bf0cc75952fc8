package preflight

import (
	"bufio"
	"io"
	"io/fs"
	"strings"
)

// kconfig is a kernel build configuration.
type kconfig struct {
	values map[string]string // "CONFIG_LIVEPATCH" -> "y"; unset options are absent
	source string            // the file it came from
}

// enabled reports whether option is built in ("y").
func (c *kconfig) enabled(option string) bool { return c.values[option] == "y" }

// machine spells the architecture the config builds for as `uname -m`
// (and modinfo's Module.Machine) does, or "" when unknown.
func (c *kconfig) machine() string {
	switch {
	case c.enabled("CONFIG_X86_64"):
		return "x86_64"
	case c.enabled("CONFIG_ARM64"):
		if c.enabled("CONFIG_CPU_BIG_ENDIAN") {
			return "aarch64_be"
		}
		return "aarch64"
	case c.enabled("CONFIG_PPC64"):
		if c.enabled("CONFIG_CPU_LITTLE_ENDIAN") {
			return "ppc64le"
		}
		return "ppc64"
	case c.enabled("CONFIG_S390"):
		return "s390x"
	case c.enabled("CONFIG_LOONGARCH") && c.enabled("CONFIG_64BIT"):
		return "loongarch64"
	case c.enabled("CONFIG_RISCV") && c.enabled("CONFIG_64BIT"):
		return "riscv64"
	}
	return ""
}

// parseConfig reads a kernel .config: "CONFIG_X=value" lines; comments
// ("# CONFIG_X is not set") and other lines are skipped.
func parseConfig(r io.Reader) (map[string]string, error) {
	values := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "CONFIG_") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		values[k] = strings.Trim(v, `"`)
	}
	return values, sc.Err()
}

// notFoundError is a "does not exist" whose message says it all: it
// matches fs.ErrNotExist without repeating "file does not exist".
type notFoundError string

func notFound(msg string) error              { return notFoundError(msg) }
func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == fs.ErrNotExist }
