// SPDX-License-Identifier: GPL-2.0
/*
 * The vmlinux object of livepatch-e2e-no-replace.ko (built as klp-build
 * --no-replace would): cmdline_proc_show(), so /proc/cmdline prints a
 * marker line while the patch is in effect.
 */
#include <linux/kernel.h>
#include <linux/seq_file.h>

#include "klp_e2e_build.h"

static int livepatch_e2e_no_replace_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "livepatch_e2e_no_replace: this has been live patched\n");
	return 0;
}

KLP_E2E_FUNCS(livepatch_e2e_no_replace_vmlinux_funcs) = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_e2e_no_replace_cmdline_show,
	},
};

KLP_E2E_OBJECT(livepatch_e2e_no_replace_vmlinux, NULL, livepatch_e2e_no_replace_vmlinux_funcs);
