// Package schema holds the JSON Schemas (draft 2020-12) of the documents
// that klp prints with --json, described in docs/json.md, and validates
// documents against them.
//
// Each document has one file, <name>.schema.json, whose schema_version is a
// const: the schema describes exactly what this klp prints, and rejects a
// field it does not know. common.schema.json holds the objects that several
// documents share. The schemas refer to each other by relative $ref and are
// resolved among the embedded files only: validation never reads the
// network or the disk.
package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.schema.json
var files embed.FS

// BaseURL is the common prefix of every schema's $id: the file's place in
// the repository.
const BaseURL = "https://raw.githubusercontent.com/klp-project/klp/main/docs/schema/"

// The documents, each named after its schema file (<name>.schema.json).
const (
	Status    = "status"    // klp status, klp check
	Patches   = "patches"   // klp patches
	Blocking  = "blocking"  // klp blocking, kgr blocking, kgr blocking_threads
	Stall     = "stall"     // klp blocking --why
	Poke      = "poke"      // kgr poke
	Outcome   = "outcome"   // load, unload, disable, enable, wait, signal, force (also --all)
	Install   = "install"   // klp install, klp uninstall
	List      = "list"      // klp list
	Downgrade = "downgrade" // klp downgrade
	Info      = "info"      // klp info
	Preflight = "preflight" // klp preflight
	Snapshot  = "snapshot"  // klp snapshot, klp snapshot --show
	Error     = "error"     // any command that failed before its own document

	// Module is not a document klp prints but the module description
	// inside klp info's (info.schema.json#/$defs/Module): package
	// modinfo's JSON, without schema_version and file.
	Module = "module"

	// Manifest is not a document klp prints either but a snapshot
	// archive's manifest.json, which klp snapshot's document holds
	// (snapshot.schema.json#/$defs/Manifest).
	Manifest = "manifest"
)

// commonFile holds the shared definitions; it is no document.
const commonFile = "common.schema.json"

// schemas compiles every embedded schema once.
var schemas = sync.OnceValues(compile)

func compile() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	// No loader: a $ref that leaves the embedded files fails to compile
	// instead of being fetched.
	c.UseLoader(jsonschema.SchemeURLLoader{})
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", n, err)
		}
		if err := c.AddResource(BaseURL+n, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", n, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, n := range names {
		if n == commonFile {
			continue
		}
		doc := strings.TrimSuffix(n, ".schema.json")
		if out[doc], err = c.Compile(BaseURL + n); err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", n, err)
		}
	}
	if out[Module], err = c.Compile(BaseURL + Info + ".schema.json#/$defs/Module"); err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", Module, err)
	}
	if out[Manifest], err = c.Compile(BaseURL + Snapshot + ".schema.json#/$defs/Manifest"); err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", Manifest, err)
	}
	return out, nil
}

// Documents returns the names of the documents that have a schema, sorted,
// Module and Manifest included.
func Documents() ([]string, error) {
	m, err := schemas()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// ValidateOutput validates what a klp or kgr command line (args, after the
// program name) printed with --json: its own document, or the error
// document of a command that failed before it could print that. It returns
// the document it validated against.
func ValidateOutput(args []string, stdout []byte) (string, error) {
	doc, ok := DocumentFor(args)
	if !ok {
		return "", fmt.Errorf("validate %q: %w", args, ErrUnknownDocument)
	}
	if isErrorDocument(stdout) {
		doc = Error
	}
	return doc, Validate(doc, stdout)
}

// isErrorDocument reports whether data is an object with an error and an
// exit code and none of a command document's other fields.
func isErrorDocument(data []byte) bool {
	var keys map[string]any
	if json.Unmarshal(data, &keys) != nil {
		return false
	}
	_, hasErr := keys["error"]
	_, hasCode := keys["exit_code"]
	return hasErr && hasCode && len(keys) == 3
}

// ErrUnknownDocument is returned for a document name that has no schema.
var ErrUnknownDocument = errors.New("no schema for this document")

// Validate checks that data is exactly one JSON value and that it is a
// valid document of the given kind (one of the constants above). The
// error of an invalid document lists every violation with its place in the
// document.
func Validate(document string, data []byte) error {
	m, err := schemas()
	if err != nil {
		return err
	}
	s, ok := m[document]
	if !ok {
		return fmt.Errorf("validate %s document: %w", document, ErrUnknownDocument)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("validate %s document: not JSON: %w", document, err)
	}
	if err := s.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("validate %s document: %w", document, err)
		}
		v := violations(ve)
		slices.Sort(v) // the validator's order follows Go's map order
		return &InvalidError{Document: document, Violations: slices.Compact(v), err: ve}
	}
	return nil
}

// InvalidError is a document that its schema rejects.
type InvalidError struct {
	Document string
	// Violations holds one line per failed keyword, "at '/json/pointer':
	// what is wrong", sorted. A failed allOf, anyOf, oneOf or $ref is
	// represented by the failures under it.
	Violations []string
	err        *jsonschema.ValidationError
}

// Error is one line, so that the real-kernel suite's line protocol can
// carry it.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("validate %s document: %s", e.Document, strings.Join(e.Violations, "; "))
}

// Unwrap returns the validator's error, with the schema locations.
func (e *InvalidError) Unwrap() error { return e.err }

var printer = message.NewPrinter(language.English)

// violations lists the leaves of the validator's error tree.
func violations(e *jsonschema.ValidationError) []string {
	if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
		slices.Sort(ap.Properties) // listed in Go's map order
	}
	if len(e.Causes) == 0 {
		return []string{fmt.Sprintf("at '%s': %s", pointer(e.InstanceLocation), e.ErrorKind.LocalizedString(printer))}
	}
	var out []string
	for _, c := range e.Causes {
		out = append(out, violations(c)...)
	}
	return out
}

// pointer is the RFC 6901 JSON pointer of a place in a document; "" is the
// document itself.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// DocumentFor returns the document that klp (or kgr) prints with --json for
// the given arguments (without the program name), for example "outcome"
// for {"--json", "load", "--all"} or "stall" for {"blocking", "--why"}.
// It returns false for a command that prints no document (help, version,
// completion, an unknown command).
func DocumentFor(args []string) (string, bool) {
	cmd, i := "", 0
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--sysfs" || a == "--procfs" || a == "--snapshot":
			i++ // the flag's value
		case a == "--":
			return "", false
		case strings.HasPrefix(a, "-"):
		default:
			cmd = a
		}
		if cmd != "" {
			break
		}
	}
	switch cmd {
	case "status", "check":
		return Status, true
	case "patches":
		return Patches, true
	case "blocking", "blocking_threads":
		for _, a := range args[i+1:] {
			if a == "--why" || a == "--why=true" {
				return Stall, true
			}
		}
		return Blocking, true
	case "poke":
		return Poke, true
	case "load", "unload", "disable", "enable", "wait", "signal", "force":
		return Outcome, true
	case "install", "uninstall":
		return Install, true
	case "list":
		return List, true
	case "downgrade":
		return Downgrade, true
	case "info":
		return Info, true
	case "preflight":
		return Preflight, true
	case "snapshot":
		return Snapshot, true
	}
	return "", false
}
