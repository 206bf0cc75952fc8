/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The body of klp_e2e_deb_v1 and klp_e2e_deb_v2: a cumulative (atomic
 * replace) livepatch of cmdline_proc_show() after which /proc/cmdline names
 * its version. The suite's Debian guest ships each in a .deb of the same
 * version and downgrades from v2 to v1 through apt: the older package's
 * postinst loads v1, which replaces v2.
 *
 * Define KLP_E2E_DEB_VERSION (a string) before including it.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klp_e2e_deb_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_e2e_deb: this has been live patched by version " KLP_E2E_DEB_VERSION "\n");
	return 0;
}

static struct klp_func klp_e2e_deb_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_e2e_deb_show,
	},
	{}
};

static struct klp_object klp_e2e_deb_objs[] = {
	{
		.funcs = klp_e2e_deb_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_deb_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_deb_objs,
	.replace = true,
};

static int __init klp_e2e_deb_init(void)
{
	return klp_enable_patch(&klp_e2e_deb_patch);
}

static void __exit klp_e2e_deb_exit(void)
{
}

module_init(klp_e2e_deb_init);
module_exit(klp_e2e_deb_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: cumulative livepatch of cmdline_proc_show, version " KLP_E2E_DEB_VERSION);
MODULE_INFO(livepatch, "Y");
