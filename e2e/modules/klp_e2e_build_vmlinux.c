// SPDX-License-Identifier: GPL-2.0
/*
 * The patch of livepatch-e2e-build.ko (a cumulative patch, klp-build's
 * default): one vmlinux object, as klp-build's diff of vmlinux would give.
 *
 * - cmdline_proc_show() (sympos 0, "must be unique"): /proc/cmdline prints
 *   a marker line while the patch is in effect;
 * - version_proc_show() with an explicit sympos 1: /proc/version prints
 *   another marker line.
 */
#include <linux/kernel.h>
#include <linux/seq_file.h>

#include "klp_e2e_build.h"

static int livepatch_e2e_build_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "livepatch_e2e_build: this has been live patched\n");
	return 0;
}

static int livepatch_e2e_build_version_show(struct seq_file *m, void *v)
{
	seq_puts(m, "livepatch_e2e_build: version_proc_show has been live patched\n");
	return 0;
}

KLP_E2E_FUNCS(livepatch_e2e_build_vmlinux_funcs) = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = livepatch_e2e_build_cmdline_show,
	},
	{
		.old_name = "version_proc_show",
		.new_func = livepatch_e2e_build_version_show,
		.sympos = 1,
	},
};

KLP_E2E_OBJECT(livepatch_e2e_build_vmlinux, NULL, livepatch_e2e_build_vmlinux_funcs);
