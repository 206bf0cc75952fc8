// Command klp-exporter serves klp metrics and klp exporter. klp executes
// it for those two commands, with its own command line, so that
// Prometheus's libraries are linked into this program only (see
// cli.ExporterProgram); run directly, it takes the same arguments.
package main

import (
	"os"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/exporter"
)

func main() {
	env := cli.DefaultEnv(os.Stdin, os.Stdout, os.Stderr)
	env.Exporter = exporter.Commands{}
	os.Exit(int(cli.RunExporter(os.Args, env)))
}
