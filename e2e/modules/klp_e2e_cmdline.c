// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_cmdline - a non-replace livepatch of vmlinux for the klp e2e suite.
 *
 * It replaces cmdline_proc_show(), so the effect is visible from user space:
 * while the patch is in effect /proc/cmdline prints a fixed marker line
 * instead of the boot command line.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klp_e2e_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_e2e_cmdline: this has been live patched\n");
	return 0;
}

static struct klp_func klp_e2e_cmdline_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_e2e_cmdline_show,
	},
	{}
};

static struct klp_object klp_e2e_cmdline_objs[] = {
	{
		/* A NULL name means vmlinux. */
		.funcs = klp_e2e_cmdline_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_cmdline_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_cmdline_objs,
};

static int __init klp_e2e_cmdline_init(void)
{
	return klp_enable_patch(&klp_e2e_cmdline_patch);
}

static void __exit klp_e2e_cmdline_exit(void)
{
}

module_init(klp_e2e_cmdline_init);
module_exit(klp_e2e_cmdline_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch of cmdline_proc_show");
MODULE_INFO(livepatch, "Y");
