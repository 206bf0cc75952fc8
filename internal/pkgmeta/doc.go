// Package pkgmeta answers package-manager questions about live patch modules:
// which package installed a loaded patch, which CVEs and bugs its changelog
// names, when it expires, whether an update is available, and which older
// version a downgrade would go back to.
//
// Everything it learns comes from external programs (rpm, dpkg, dpkg-query,
// zypper, apt-cache, apt-get) and from host files (module directories,
// lifecycle data, Debian changelogs). The programs run through a [Runner] and
// every host path comes from a [Config], so tests substitute a fake runner and
// temporary directories; nothing here reads a global.
//
// A missing program is not an error: klp still prints what it knows, and the
// functions return notes ("zypper is not installed; ...") for the caller to
// show once. Errors are kept for things that went wrong.
//
// The SUSE behaviour this reproduces is klp -v patches' RPM, CVE and bug
// fix lines, -vv's expiration and update status, and klp downgrade's zypper
// procedure (docs/json.md describes the results); where SUSE's own script
// could not be consulted, the choices are documented next to the code that
// makes them.
package pkgmeta
