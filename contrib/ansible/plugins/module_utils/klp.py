# -*- coding: utf-8 -*-
# Copyright: 2026 klp developers; license: see COPYING
"""Shared code of the klp modules: run klp with --json and read its documents.

klp prints exactly one JSON document on stdout with --json, also when it fails
(docs/json.md in klp's repository). These helpers never read klp's text
output: they read the document and the exit status.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

# Exit statuses of the commands that change patches (docs/json.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_STALLED = 3
EXIT_UNSUPPORTED = 4
EXIT_PERMISSION = 5

# The keys of klp's error document, printed when a command failed before it
# could print its own.
_ERROR_KEYS = frozenset(("schema_version", "error", "exit_code"))

COMMON_ARGS = dict(
    klp_path=dict(type="path"),
    sysfs=dict(type="path"),
    procfs=dict(type="path"),
)


class KlpError(Exception):
    """klp could not be run, or did not print a JSON document."""

    def __init__(self, msg, rc=None, stderr=None, document=None):
        super(KlpError, self).__init__(msg)
        self.msg = msg
        self.rc = rc
        self.stderr = stderr
        self.document = document


def is_error_document(doc):
    """Whether doc is klp's error document rather than the command's own."""
    return isinstance(doc, dict) and set(doc) == _ERROR_KEYS


class Klp(object):
    """klp on the managed host, optionally reading a copied tree."""

    def __init__(self, module, klp_path=None, sysfs=None, procfs=None):
        self.module = module
        self.binary = klp_path or module.get_bin_path("klp", required=True)
        self.sysfs = sysfs
        self.procfs = procfs
        self.commands = []

    def argv(self, args):
        argv = [self.binary, "--json"]
        if self.sysfs:
            argv += ["--sysfs", self.sysfs]
        if self.procfs:
            argv += ["--procfs", self.procfs]
        return argv + list(args)

    def run(self, args, ok=(EXIT_OK,)):
        """Run klp ARGS --json; return (exit status, document, stderr).

        An exit status outside ok, with klp's error document, raises
        KlpError with that error; so does a missing or invalid document.
        """
        argv = self.argv(args)
        self.commands.append(argv)
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        try:
            doc = json.loads(out)
        except ValueError:
            raise KlpError("%s printed no JSON document (exit status %d): %s"
                           % (" ".join(argv[1:]), rc, err.strip()), rc=rc, stderr=err)
        if not isinstance(doc, dict) or "schema_version" not in doc:
            raise KlpError("%s printed a document without schema_version" % " ".join(argv[1:]),
                           rc=rc, stderr=err, document=doc)
        if is_error_document(doc) or rc not in ok:
            raise KlpError(doc.get("error") or ("klp exited with status %d: %s" % (rc, err.strip())),
                           rc=rc, stderr=err, document=doc)
        return rc, doc, err

    def version(self):
        """klp's version: the second word of `klp --version` (klp has no
        JSON document for it)."""
        rc, out, err = self.module.run_command([self.binary, "--version"])
        if rc != 0:
            return None
        words = out.split()
        return words[-1] if words else None


def patch_states(list_doc):
    """Map patch name -> state from `klp list --json` (enabled, disabled,
    patching, unpatching, superseded, pinned)."""
    return dict((p["name"], p["state"]) for p in list_doc.get("loaded") or [])


def installed_entries(list_doc):
    """Map patch name -> installed entry (name, release, path, source)."""
    return dict((p["name"], p) for p in list_doc.get("installed") or [])


def describe_tasks(tasks, limit=5):
    """One line naming the blocking tasks of a stall or blocking document."""
    parts = []
    for t in (tasks or [])[:limit]:
        where = ""
        if t.get("culprits"):
            where = " in " + t["culprits"][0].split("] ", 1)[-1]
        kind = "kernel thread " if t.get("kernel_thread") else ""
        parts.append("%s%s (pid %s)%s" % (kind, t.get("comm"), t.get("tid"), where))
    if tasks and len(tasks) > limit:
        parts.append("and %d more" % (len(tasks) - limit))
    return ", ".join(parts) if parts else "no task named (see unreadable)"


def failed_checks(preflight_doc):
    """The failed checks of a preflight document (or of an outcome's
    preflight list), as 'id: reason' strings."""
    checks = preflight_doc if isinstance(preflight_doc, list) else (preflight_doc or {}).get("checks") or []
    return ["%s: %s" % (c["id"], c["reason"]) for c in checks if c.get("status") == "fail"]
