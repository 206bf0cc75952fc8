# -*- coding: utf-8 -*-
# Copyright: 2026 klp developers; license: see COPYING
"""Action of klp_project.klp.patch: copy a patch module from the controller
to the managed host's temporary directory, then run the module on it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.get("src")
        if src and not boolean(args.get("remote_src", False), strict=False):
            try:
                local = self._find_needle("files", src)
            except Exception as e:
                raise AnsibleActionFail("find patch module %s: %s" % (src, e))
            remote = self._connection._shell.join_path(
                self._connection._shell.tmpdir, os.path.basename(local))
            self._transfer_file(local, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            args["src"] = remote
            args["remote_src"] = True
        try:
            result.update(self._execute_module(module_name="klp_project.klp.patch", module_args=args,
                                               task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
