#!/bin/bash
# Runs rpmlint on klp's .rpm files (make packages-check) without letting it
# write outside its temporary directory. rpmlint 2.4 unpacks a package with
# "rpm2cpio PKG | cpio -id" there, and GNU cpio writes members with absolute
# names (nfpm's payload has them: /usr/bin/klp) to the host's file system.
# A cpio that drops the leading "/" keeps the files where rpmlint reads them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
printf '#!/bin/sh\nexec /usr/bin/cpio --no-absolute-filenames "$@"\n' >"$bin/cpio"
chmod 0755 "$bin/cpio"
PATH=$bin:$PATH rpmlint --config "$here/rpmlint.toml" --rpmlintrc "$here/rpmlintrc" "$@"
