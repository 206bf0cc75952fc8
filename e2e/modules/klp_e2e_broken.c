// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_broken - a livepatch whose target function does not exist.
 *
 * klp_enable_patch() cannot resolve the symbol, so the module's init fails
 * and insmod must report an error; no sysfs directory may be left behind.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

static void klp_e2e_broken_new(void)
{
}

static struct klp_func klp_e2e_broken_funcs[] = {
	{
		.old_name = "klp_e2e_no_such_function",
		.new_func = klp_e2e_broken_new,
	},
	{}
};

static struct klp_object klp_e2e_broken_objs[] = {
	{
		.funcs = klp_e2e_broken_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_broken_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_broken_objs,
};

static int __init klp_e2e_broken_init(void)
{
	return klp_enable_patch(&klp_e2e_broken_patch);
}

static void __exit klp_e2e_broken_exit(void)
{
}

module_init(klp_e2e_broken_init);
module_exit(klp_e2e_broken_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch of a missing symbol (must fail to load)");
MODULE_INFO(livepatch, "Y");
