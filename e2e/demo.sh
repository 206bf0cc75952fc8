#!/bin/sh
# The narrated klp demo (`make demo`): sets the host up like the e2e suite,
# boots Debian's 6.1 kernel in QEMU and shows klp at work. Needs root.
set -e
cd "$(dirname "$0")/.."
exec go run ./e2e/demo "$@"
