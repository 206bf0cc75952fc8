package report

import "github.com/klp-project/klp/internal/snapshot"

// Snapshot is `klp snapshot --json` (the archive just written) and `klp
// snapshot --show FILE --json` (an archive read back). Its manifest is the
// archive's own manifest.json, whose JSON package snapshot defines: it is
// the file format.
type Snapshot struct {
	SchemaVersion int `json:"schema_version"`
	// File is the archive's path, null when it went to stdout.
	File *string `json:"file"`
	// Bytes is the archive's size.
	Bytes    int64             `json:"bytes"`
	Manifest snapshot.Manifest `json:"manifest"`
}

// NewSnapshot builds the snapshot document; file "" or "-" is stdout.
func NewSnapshot(m *snapshot.Manifest, file string, size int64) Snapshot {
	doc := Snapshot{SchemaVersion: Version, Bytes: size, Manifest: *m}
	if file != "" && file != "-" {
		doc.File = &file
	}
	return doc
}
