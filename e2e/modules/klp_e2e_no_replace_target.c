// SPDX-License-Identifier: GPL-2.0
/*
 * The klp_e2e_target object of livepatch-e2e-no-replace.ko: its own file,
 * as klp-build diffs each patched object separately, so the module's
 * __klp_objects section gathers entries from two files.
 * klp_e2e_target_read() is replaced: /proc/klp_e2e_target reads a marker
 * instead of "unpatched" while the patch is in effect.
 */
#include <linux/fs.h>
#include <linux/kernel.h>

#include "klp_e2e_build.h"

static ssize_t livepatch_e2e_no_replace_read(struct file *file, char __user *buf,
					     size_t count, loff_t *ppos)
{
	static const char msg[] = "livepatch_e2e_no_replace\n";

	return simple_read_from_buffer(buf, count, ppos, msg, sizeof(msg) - 1);
}

KLP_E2E_FUNCS(livepatch_e2e_no_replace_target_funcs) = {
	{
		.old_name = "klp_e2e_target_read",
		.new_func = livepatch_e2e_no_replace_read,
	},
};

KLP_E2E_OBJECT(livepatch_e2e_no_replace_target, "klp_e2e_target", livepatch_e2e_no_replace_target_funcs);
