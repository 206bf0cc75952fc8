#!/bin/bash
# Builds klp's .deb and .rpm from packaging/nfpm.yaml with nfpm, once the
# Makefile (make packages-build) has staged the files in STAGE:
#
#   package.sh STAGE DIST
#
# Each packager gets its version scheme (version.sh) and a changelog made
# from packaging/changelog.yml whose newest entry names exactly the
# package's version: the release's "<semver>-<release>", or for a snapshot
# an entry of its own ("Development snapshot of commit ..."), as dch
# --snapshot would add. lintian and rpmlint check that the changelog and the
# package agree.
#
# Environment: GO (go), NFPM (the nfpm module@version to go run),
# RELEASE (1), ARCH (amd64), MAINTAINER.
set -euo pipefail
stage=$1
dist=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
GO=${GO:-go}
NFPM=${NFPM:?NFPM must name the nfpm module@version}
export RELEASE=${RELEASE:-1}
ARCH=${ARCH:-amd64}
MAINTAINER=${MAINTAINER:-klp developers <klp-devel@klp-project.org>}

base=$("$here/version.sh" base)
debver=$("$here/version.sh")
read -r rpmver rpmrel <<<"$("$here/version.sh" rpm)"

# changelog PACKAGE-VERSION-RELEASE writes the staged changelog.
changelog() {
	local full=$1
	if [ "$debver" = "$base" ]; then
		# A release: its own entry, with the release appended.
		sed "0,/^- semver: .*/s//- semver: \"$full\"/" "$here/changelog.yml"
	else
		local when commit
		when=$(TZ=UTC git -C "$repo" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
		commit=$(git -C "$repo" rev-parse --short=12 HEAD)
		cat <<EOT
- semver: "$full"
  date: $when
  packager: $MAINTAINER
  deb:
    urgency: low
    distributions:
      - UNRELEASED
  changes:
    - note: Development snapshot of commit $commit, leading to $base.
EOT
		grep -v '^#' "$here/changelog.yml"
	fi
}

mkdir -p "$dist"
cd "$repo"
for p in deb rpm; do
	if [ $p = deb ]; then
		version=$debver release=$RELEASE
	else
		version=$rpmver release=$rpmrel
	fi
	changelog "$version-$release" >"$stage/changelog-$p.yml"
	sed "s|^changelog: .*|changelog: $stage/changelog-$p.yml|" "$here/nfpm.yaml" >"$stage/nfpm-$p.yaml"
	KLP_STAGE=$stage KLP_VERSION=$version KLP_RELEASE=$release KLP_ARCH=$ARCH KLP_MAINTAINER=$MAINTAINER \
		"$GO" run "$NFPM" package --config "$stage/nfpm-$p.yaml" --packager $p --target "$dist/"
done
