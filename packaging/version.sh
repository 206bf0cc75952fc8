#!/bin/sh
# Prints the version of klp for the working tree, in each packager's
# scheme. <semver> is the newest entry of packaging/changelog.yml.
#
#   version.sh        the version (of the binary, and of the .deb):
#                       <semver>                             a commit tagged v<semver>, clean tree
#                       <semver>~git<YYYYMMDDhhmmss>.<commit>[.dirty]   anything else
#                     "~" sorts before the release in dpkg, so a snapshot is
#                     older than the release it leads to and newer than the
#                     one before.
#   version.sh rpm    "VERSION RELEASE" of the .rpm: "<semver> <release>" for a
#                     release, "<semver> 0.<YYYYMMDDhhmmss>.git<commit>[.dirty]"
#                     for a snapshot (a pre-release snapshot, sorting before
#                     release 1 of <semver>, as Fedora numbers them).
#   version.sh base   <semver>
# RELEASE (default 1) is the package revision of a release.
set -eu
here=$(dirname "$0")
release=${RELEASE:-1}
base=$(sed -n 's/^- semver: *"\{0,1\}\([0-9][0-9A-Za-z.]*\)"\{0,1\} *$/\1/p' "$here/changelog.yml" | head -n 1)
[ -n "$base" ] || {
	echo "version.sh: no semver in $here/changelog.yml" >&2
	exit 1
}
snapshot=
if cd "$here/.." && git rev-parse --git-dir >/dev/null 2>&1; then
	dirty=
	git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
	if [ -n "$dirty" ] || [ "$(git tag --points-at HEAD --list "v$base")" != "v$base" ]; then
		when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
		commit=$(git rev-parse --short=7 HEAD)
		snapshot=$when.$commit$dirty
	fi
fi # else a release tarball
case "${1:-}" in
base) echo "$base" ;;
rpm)
	if [ -n "$snapshot" ]; then
		echo "$base 0.${snapshot%%.*}.git${snapshot#*.}"
	else
		echo "$base $release"
	fi
	;;
*)
	if [ -n "$snapshot" ]; then
		echo "$base~git$snapshot"
	else
		echo "$base"
	fi
	;;
esac
