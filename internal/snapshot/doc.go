// Package snapshot is the file format of klp snapshots: one machine's live
// patching state, captured by klp snapshot and read back, anywhere, by
// klp --snapshot FILE as a read-only [kernel.Handle] (docs/snapshot.md).
//
// A snapshot is a tar archive compressed with zstd. Its first entry is
// manifest.json ([Manifest]); the others are the captured files, byte for
// byte, named as on the machine without the leading slash
// (sys/kernel/livepatch/p/enabled, proc/modules, boot/config-6.12.0), and
// one entry named "packed" that holds, one record each, the files too small
// and too many for tar entries of their own (each task's patch_state, comm,
// stat and cmdline, the stacks) and the files that exist but could not be
// read, with the error the read met:
//
//	PATH =SIZE\nBYTES\n          the file's content (SIZE bytes)
//	PATH !OP ERROR MODE\n        open or read (OP) failed with ERROR: an
//	                             errno name (EACCES) or a quoted message
//	PATH ? MODE\n                the file exists; its content was not captured
//
// A PATH that ends in "/" in an error record is a directory that could not
// be listed. MODE is the permission bits, in octal.
//
// [Read] takes nothing on trust: it accepts regular files and directories
// only (a symbolic link, a device, a hard link is an error), names that are
// clean relative paths below sys/, proc/, dev/ or boot/, and sizes within
// [Limits]; a truncated or corrupted archive, or one of a newer format
// version, gets one error saying so. Nothing is extracted to disk: the
// archive is read into memory and served from there ([Archive]).
package snapshot
