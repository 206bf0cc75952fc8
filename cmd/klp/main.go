// Command klp administers kernel live patches. Installed as kgr (a link to
// the same binary), it serves SLE 12's kGraft command set.
package main

import (
	"os"

	"github.com/klp-project/klp/internal/cli"
)

func main() {
	os.Exit(int(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)))
}
