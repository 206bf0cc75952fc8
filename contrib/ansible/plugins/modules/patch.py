#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: 2026 klp developers; license: see COPYING

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: patch
short_description: Load, install, disable or remove a kernel live patch with klp
version_added: "0.1.0"
description:
  - Brings one kernel live patch (a patch module on the upstream C(/sys/kernel/livepatch) interface)
    to the wanted state with C(klp), and waits for the kernel's transition to complete.
  - Before it loads a patch it runs C(klp preflight) on the module and fails with the failed checks, so
    a patch the kernel would refuse is never tried.
  - The module runs C(klp --json) and reads only klp's JSON documents and exit statuses.
  - C(changed) is true only when the kernel's state (or the patches installed for boot) changed; a load
    that stalled and was rolled back leaves the kernel as it was and reports C(changed=false).
author:
  - klp developers
requirements:
  - klp on the managed host (the C(klp) package, or I(klp_path)), run as root
options:
  name:
    description:
      - The patch's name, the module name under C(/sys/kernel/livepatch) (C(-) is read as C(_)).
      - Without I(src), a patch to load is taken from the patches installed for the running kernel
        (C(klp install), C(/var/lib/klp/<release>/)).
      - With I(src), it must match the module's own name if given.
    type: str
  src:
    description:
      - The patch module file (C(.ko), also compressed) on the managed host.
      - With the C(klp_project.klp.patch) action, a file on the controller is copied to the host first
        unless I(remote_src=true).
    type: path
  remote_src:
    description:
      - Whether I(src) is already on the managed host. Handled by the action plugin.
    type: bool
    default: false
  state:
    description:
      - C(loaded) the patch is loaded, enabled and its transition complete.
      - C(installed) the same, and the module is installed for the running kernel so that C(klp.service)
        loads it at boot (C(klp install)); needs I(src) unless it is installed already.
      - C(disabled) the patch does not run (C(klp disable)); its module may stay loaded.
      - C(absent) the patch module is unloaded (C(klp unload)) and uninstalled (C(klp uninstall)).
    type: str
    choices: [loaded, installed, disabled, absent]
    default: loaded
  wait:
    description:
      - Seconds to wait for the transition (C(klp --timeout)); C(0) waits without limit.
    type: int
    default: 60
  on_stall:
    description:
      - What to do when the transition has not completed after I(wait) seconds.
      - C(rollback) reverses the transition (for a load, the module is removed again), C(leave) leaves it
        in transition. The task fails either way, naming the blocking tasks.
    type: str
    choices: [rollback, leave]
    default: rollback
  preflight:
    description:
      - Run C(klp preflight) on the module before loading it and fail on a failed check.
    type: bool
    default: true
  klp_path:
    description:
      - Path of the klp binary on the managed host; by default C(klp) on C(PATH).
    type: path
  sysfs:
    description:
      - Read sysfs from this directory, a copy of another machine's (C(klp --sysfs)). klp refuses to change
        a copied tree, so this is useful with check mode only.
    type: path
  procfs:
    description:
      - Read procfs from this directory (C(klp --procfs)); see I(sysfs).
    type: path
attributes:
  check_mode:
    support: full
    details: Runs preflight and reads the state; reports what would change, changes nothing.
  diff_mode:
    support: full
    details: The patch's state and whether it is installed for boot, before and after.
notes:
  - A patch transition can only complete when every task has left the functions the patch changes; a kernel
    thread sleeping in one of them holds it (see C(klp blocking --why)).
  - Use M(klp_project.klp.patch_info) to read the state without changing it.
seealso:
  - module: klp_project.klp.patch_info
'''

EXAMPLES = r'''
- name: Load a live patch from the controller and keep it for boot
  klp_project.klp.patch:
    src: files/livepatch_cve_2026_1234.ko
    state: installed
    wait: 120

- name: Load a patch already on the host; leave a stalled transition for inspection
  klp_project.klp.patch:
    src: /var/tmp/livepatch_fix.ko
    remote_src: true
    on_stall: leave

- name: Load a patch that klp install put in /var/lib/klp
  klp_project.klp.patch:
    name: livepatch_fix

- name: Roll back
  klp_project.klp.patch:
    name: livepatch_fix
    state: absent
'''

RETURN = r'''
patch:
  description: The patch's name.
  returned: always
  type: str
  sample: livepatch_fix
before:
  description: The patch's state before the task, C(state) as C(klp list) says (C(enabled), C(patching),
    C(unpatching), C(disabled), C(superseded), C(pinned)) or C(absent), and C(installed) for boot.
  returned: always
  type: dict
  sample: {state: absent, installed: false}
after:
  description: The same after the task (in check mode, what it would be).
  returned: always
  type: dict
  sample: {state: enabled, installed: true}
actions:
  description: The klp commands that changed something (or would have, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [load, install]
outcome:
  description: klp's outcome document (schema_version 2, docs/json.md) of the last command that acted on the
    kernel (load, wait, enable, disable, unload); null when none ran.
  returned: always
  type: dict
  sample: {schema_version: 2, action: load, patch: livepatch_fix, result: patched, exit_code: 0}
outcomes:
  description: Every document klp printed for the commands that changed something (outcome, install).
  returned: always
  type: list
  elements: dict
preflight:
  description: klp's preflight document (docs/json.md) of the module, when preflight ran.
  returned: when preflight ran
  type: dict
stall:
  description: Why the transition did not complete (the outcome's C(stall)), with the blocking tasks.
  returned: when the transition stalled
  type: dict
failed_checks:
  description: The preflight checks that failed, each as its id, a colon and its reason.
  returned: when preflight refused the patch
  type: list
  elements: str
'''

import hashlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.klp_project.klp.plugins.module_utils.klp import (
    COMMON_ARGS, EXIT_OK, EXIT_ERROR, EXIT_STALLED, EXIT_UNSUPPORTED, EXIT_PERMISSION,
    Klp, KlpError, describe_tasks, failed_checks, installed_entries, patch_states,
)

CHANGE_OK = (EXIT_OK, EXIT_ERROR, EXIT_STALLED, EXIT_UNSUPPORTED, EXIT_PERMISSION)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


class Runner(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.klp = Klp(module, p["klp_path"], p["sysfs"], p["procfs"])
        self.state = p["state"]
        self.src = p["src"]
        self.name = p["name"].replace("-", "_") if p["name"] else None
        self.timeout = ["--timeout", "%ds" % p["wait"], "--on-stall", p["on_stall"]]
        self.result = dict(changed=False, actions=[], outcome=None, outcomes=[])

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def read_state(self):
        rc, doc, err = self.klp.run(["list"])
        release = doc.get("release")
        installed = dict((n, e) for n, e in installed_entries(doc).items()
                         if release is None or e.get("release") == release)
        return patch_states(doc).get(self.name, "absent"), installed.get(self.name)

    def resolve_name(self):
        if not self.src:
            if not self.name:
                self.fail("name or src is required")
            return
        rc, info, err = self.klp.run(["info", self.src])
        self.result["info"] = info
        if not info.get("livepatch"):
            self.fail("%s is not a live patch module" % self.src)
        if self.name and self.name != info["name"]:
            self.fail("%s is patch %s, not %s" % (self.src, info["name"], self.name))
        self.name = info["name"]

    def run_preflight(self, target):
        if not self.module.params["preflight"]:
            return
        rc, doc, err = self.klp.run(["preflight", target], ok=(EXIT_OK, EXIT_ERROR))
        self.result["preflight"] = doc
        failed = failed_checks(doc)
        if doc.get("result") == "fail":
            self.fail("preflight refused patch %s: %s" % (self.name, "; ".join(failed)), failed_checks=failed)

    def change(self, args, verb):
        """Run a command that changes the kernel; fail with its outcome
        unless it succeeded. Return the outcome document."""
        rc, doc, err = self.klp.run(args, ok=CHANGE_OK)
        self.result["outcomes"].append(doc)
        self.result["outcome"] = doc
        result = doc.get("result")
        if rc == EXIT_OK:
            if result not in ("already loaded", "ready", "not needed"):
                self.result["changed"] = True
            return doc
        if doc.get("stall") is not None:
            stall = doc["stall"]
            self.result["stall"] = stall
            # A rolled back load leaves the kernel as it was.
            if result != "rolled back":
                self.result["changed"] = True
            self.fail("%s of patch %s stalled after %ss (%s): blocked by %s"
                      % (verb, self.name, self.module.params["wait"], result,
                         describe_tasks(stall.get("tasks"))))
        if result == "refused" and doc.get("preflight"):
            failed = failed_checks(doc["preflight"])
            self.fail("klp refused to load patch %s: %s" % (self.name, "; ".join(failed) or doc.get("error")),
                      failed_checks=failed)
        if result not in ("refused", "failed"):
            self.result["changed"] = True
        self.fail("%s of patch %s failed (%s): %s" % (verb, self.name, result, doc.get("error")))

    def plan(self, state, installed):
        """The actions that bring the patch to the wanted state, and the
        state they lead to."""
        actions = []
        after_state, after_installed = state, installed is not None
        want = self.state
        if want in ("loaded", "installed"):
            if state == "pinned":
                self.fail("patch %s was forced and is pinned until reboot; it cannot be loaded again" % self.name)
            if state == "patching":
                actions.append("wait")
            elif state == "unpatching":
                actions.append("enable")
            elif state != "enabled":
                if not self.src and installed is None:
                    self.fail("patch %s is not loaded and not installed for this kernel: give src" % self.name)
                actions.append("load")
            after_state = "enabled"
            if want == "installed":
                if self.src is None and installed is None:
                    self.fail("patch %s is not installed for this kernel: give src" % self.name)
                if self.src is not None and (installed is None or sha256(installed["path"]) != sha256(self.src)):
                    actions.append("install")
                after_installed = True
        elif want == "disabled":
            if state in ("enabled", "patching"):
                actions.append("disable")
                after_state = "disabled"
            elif state == "unpatching":
                actions.append("wait")
                after_state = "disabled"
        elif want == "absent":
            if state != "absent":
                if state == "pinned":
                    self.fail("patch %s was forced and is pinned until reboot; it cannot be unloaded" % self.name)
                actions.append("unload")
                after_state = "absent"
            if installed is not None:
                actions.append("uninstall")
                after_installed = False
        return actions, dict(state=after_state, installed=after_installed)

    def apply(self, action):
        target = self.src or self.name
        if action == "load":
            self.change(["load", target] + self.timeout, "load")
        elif action == "wait":
            self.change(["wait", self.name] + self.timeout, "wait")
        elif action == "enable":
            self.change(["enable", self.name] + self.timeout, "enable")
        elif action == "disable":
            self.change(["disable", self.name] + self.timeout, "disable")
        elif action == "unload":
            self.change(["unload", self.name] + self.timeout, "unload")
        elif action in ("install", "uninstall"):
            args = [action, self.src if action == "install" else self.name]
            rc, doc, err = self.klp.run(args)
            self.result["outcomes"].append(doc)
            self.result["changed"] = True

    def main(self):
        try:
            self.resolve_name()
            state, installed = self.read_state()
            before = dict(state=state, installed=installed is not None)
            actions, after = self.plan(state, installed)
            self.result.update(patch=self.name, before=before, after=after, actions=actions)
            if self.module._diff:
                self.result["diff"] = dict(before=before, after=after,
                                           before_header="patch %s" % self.name,
                                           after_header="patch %s" % self.name)
            if "load" in actions:
                self.run_preflight(self.src or self.name)
            if self.module.check_mode:
                self.result["changed"] = bool(actions)
                self.result["msg"] = ("would %s patch %s" % (", ".join(actions), self.name)
                                      if actions else "patch %s is %s" % (self.name, self.state))
                self.module.exit_json(**self.result)
            for action in actions:
                self.apply(action)
            if actions:
                # Read back what the kernel says now.
                state, installed = self.read_state()
                self.result["after"] = dict(state=state, installed=installed is not None)
                if self.module._diff:
                    self.result["diff"]["after"] = self.result["after"]
            self.result["msg"] = "patch %s: %s" % (self.name, ", ".join(actions) or "unchanged")
        except KlpError as e:
            self.result.update(rc=e.rc, stderr=e.stderr)
            if e.document is not None:
                self.result["document"] = e.document
            self.fail(e.msg)
        self.module.exit_json(**self.result)


def main():
    argument_spec = dict(
        name=dict(type="str"),
        src=dict(type="path"),
        remote_src=dict(type="bool", default=False),
        state=dict(type="str", default="loaded", choices=["loaded", "installed", "disabled", "absent"]),
        wait=dict(type="int", default=60),
        on_stall=dict(type="str", default="rollback", choices=["rollback", "leave"]),
        preflight=dict(type="bool", default=True),
    )
    argument_spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("name", "src")])
    Runner(module).main()


if __name__ == "__main__":
    main()
