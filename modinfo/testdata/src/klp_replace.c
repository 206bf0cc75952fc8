// SPDX-License-Identifier: GPL-2.0
/*
 * klp_replace: test fixture for klp's modinfo parser. An atomic-replace
 * (cumulative) livepatch: klp_patch.replace is true in the static initializer.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int klp_replace_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_replace\n");
	return 0;
}

static struct klp_func klp_replace_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_replace_cmdline_show,
	}, { }
};

static struct klp_object klp_replace_objs[] = {
	{
		.funcs = klp_replace_funcs,
	}, { }
};

static struct klp_patch klp_replace_patch = {
	.mod = THIS_MODULE,
	.objs = klp_replace_objs,
	.replace = true,
};

static int __init klp_replace_init(void)
{
	return klp_enable_patch(&klp_replace_patch);
}

static void __exit klp_replace_exit(void)
{
}

module_init(klp_replace_init);
module_exit(klp_replace_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("klp project");
MODULE_DESCRIPTION("klp test fixture: atomic-replace livepatch");
MODULE_INFO(livepatch, "Y");
