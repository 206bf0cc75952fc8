// SPDX-License-Identifier: GPL-2.0
/*
 * klp_vmlinux: test fixture for klp's modinfo parser. A livepatch with one
 * object (vmlinux) and two functions: one with sympos 0 ("must be unique")
 * and one with an explicit sympos. The sympos value is illustrative; the
 * module is parsed, never loaded, by the unit tests.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int klp_vmlinux_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_vmlinux\n");
	return 0;
}

static int klp_vmlinux_version_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_vmlinux version\n");
	return 0;
}

static struct klp_func klp_vmlinux_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_vmlinux_cmdline_show,
	}, {
		.old_name = "version_proc_show",
		.new_func = klp_vmlinux_version_show,
		.old_sympos = 2,
	}, { }
};

static struct klp_object klp_vmlinux_objs[] = {
	{
		/* name being NULL means vmlinux */
		.funcs = klp_vmlinux_funcs,
	}, { }
};

static struct klp_patch klp_vmlinux_patch = {
	.mod = THIS_MODULE,
	.objs = klp_vmlinux_objs,
};

static int __init klp_vmlinux_init(void)
{
	return klp_enable_patch(&klp_vmlinux_patch);
}

static void __exit klp_vmlinux_exit(void)
{
}

module_init(klp_vmlinux_init);
module_exit(klp_vmlinux_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("klp project");
MODULE_DESCRIPTION("klp test fixture: vmlinux livepatch");
MODULE_INFO(livepatch, "Y");
