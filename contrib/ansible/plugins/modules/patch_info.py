#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: 2026 klp developers; license: see COPYING

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: patch_info
short_description: Read the state of kernel live patching with klp
version_added: "0.1.0"
description:
  - Reports whether a live patch transition is in progress, the loaded patches and their states, the tasks
    that block a transition and why, the patches installed for the running kernel and how they differ from
    the loaded ones (drift), and klp's version.
  - Read-only; it changes nothing, so it also reads a copy of another machine's C(/sys) and C(/proc)
    (I(sysfs), I(procfs)).
  - The module runs C(klp --json) and reads only klp's JSON documents and exit statuses.
author:
  - klp developers
requirements:
  - klp on the managed host (the C(klp) package, or I(klp_path))
options:
  klp_path:
    description:
      - Path of the klp binary on the managed host; by default C(klp) on C(PATH).
    type: path
  sysfs:
    description:
      - Read sysfs from this directory, for example a snapshot of another machine (C(klp --sysfs)).
    type: path
  procfs:
    description:
      - Read procfs from this directory (C(klp --procfs)).
    type: path
attributes:
  check_mode:
    support: full
    details: The module never changes anything.
  diff_mode:
    support: none
seealso:
  - module: klp_project.klp.patch
'''

EXAMPLES = r'''
- name: Read live patching state
  klp_project.klp.patch_info:
  register: klp

- name: Stop when a transition is stuck
  ansible.builtin.assert:
    that: klp.status.status == "ready"
    fail_msg: "{{ inventory_hostname }}: {{ klp.transition.patch }} blocked by {{ klp.blocking | map(attribute='comm') | list }}"

- name: Read a snapshot copied from another machine
  klp_project.klp.patch_info:
    sysfs: /srv/snapshots/web1/sys
    procfs: /srv/snapshots/web1/proc
'''

RETURN = r'''
version:
  description: klp's version on the host.
  returned: always
  type: str
  sample: 0.1.0
ready:
  description: True when no transition is in progress.
  returned: always
  type: bool
status:
  description: klp's status document (C(klp status --json)).
  returned: always
  type: dict
  sample: {schema_version: 1, status: ready, interface: livepatch, livepatch_supported: true, transition: null}
transition:
  description: The transition in progress (C(patch), C(target)), or null.
  returned: always
  type: dict
patches:
  description: The loaded patches, from C(klp patches --json), each with its C(state) from C(klp list)
    (C(enabled), C(disabled), C(patching), C(unpatching), C(superseded), C(pinned)).
  returned: always
  type: list
  elements: dict
list:
  description: klp's list document (C(klp list --json)) - loaded and installed patches, patched functions.
  returned: always
  type: dict
installed:
  description: The patches installed for the running kernel (C(klp install)), with their paths.
  returned: always
  type: list
  elements: dict
drift:
  description: How the installed patches and the loaded ones differ - C(not_loaded) (installed, not
    enabled now) and C(not_installed) (enabled now, not installed, so gone after a reboot).
  returned: always
  type: dict
  sample: {not_loaded: [], not_installed: [livepatch_fix]}
blocking:
  description: The tasks that hold the transition, from C(klp blocking --why --json) (with C(culprits) and
    C(advice)); empty when nothing is in transition.
  returned: always
  type: list
  elements: dict
stall:
  description: klp's stall object of the transition in progress, or null.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.klp_project.klp.plugins.module_utils.klp import (
    COMMON_ARGS, EXIT_OK, EXIT_ERROR, Klp, KlpError, installed_entries, patch_states,
)


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    p = module.params
    klp = Klp(module, p["klp_path"], p["sysfs"], p["procfs"])
    try:
        rc, status, err = klp.run(["status"])
        rc, patches, err = klp.run(["patches"])
        rc, listing, err = klp.run(["list"])
        stall = None
        if status.get("transition") is not None:
            # Exit status 1: some tasks could not be read; the document says which.
            rc, why, err = klp.run(["blocking", "--why"], ok=(EXIT_OK, EXIT_ERROR))
            stall = why.get("stall")
    except KlpError as e:
        module.fail_json(msg=e.msg, rc=e.rc, stderr=e.stderr, document=e.document)

    states = patch_states(listing)
    loaded = []
    for patch in patches.get("patches") or []:
        patch = dict(patch)
        patch["state"] = states.get(patch["name"])
        loaded.append(patch)
    release = listing.get("release")
    installed = [e for e in installed_entries(listing).values()
                 if release is None or e.get("release") == release]
    installed_names = set(e["name"] for e in installed)
    enabled = set(n for n, s in states.items() if s in ("enabled", "patching"))
    module.exit_json(
        changed=False,
        version=klp.version(),
        ready=status.get("status") == "ready",
        status=status,
        transition=status.get("transition"),
        patches=loaded,
        list=listing,
        installed=sorted(installed, key=lambda e: e["name"]),
        drift=dict(not_loaded=sorted(installed_names - enabled),
                   not_installed=sorted(enabled - installed_names)),
        blocking=(stall or {}).get("tasks") or [],
        stall=stall,
    )


if __name__ == "__main__":
    main()
