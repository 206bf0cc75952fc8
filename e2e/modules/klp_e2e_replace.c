// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_replace - a cumulative (atomic replace) livepatch for the klp e2e
 * suite.
 *
 * It patches cmdline_proc_show() with its own marker and sets .replace, so
 * loading it retires every patch loaded before it (klp_e2e_cmdline in the
 * suite). Its vmlinux object has all four callbacks; each logs one line to
 * the kernel log so the suite can check that they ran, and in which order.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klp_e2e_replace_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_e2e_replace: this has been live patched\n");
	return 0;
}

static const char *klp_e2e_obj_name(struct klp_object *obj)
{
	return obj->name ? obj->name : "vmlinux";
}

static int klp_e2e_pre_patch(struct klp_object *obj)
{
	pr_info("pre_patch_callback: %s\n", klp_e2e_obj_name(obj));
	return 0;
}

static void klp_e2e_post_patch(struct klp_object *obj)
{
	pr_info("post_patch_callback: %s\n", klp_e2e_obj_name(obj));
}

static void klp_e2e_pre_unpatch(struct klp_object *obj)
{
	pr_info("pre_unpatch_callback: %s\n", klp_e2e_obj_name(obj));
}

static void klp_e2e_post_unpatch(struct klp_object *obj)
{
	pr_info("post_unpatch_callback: %s\n", klp_e2e_obj_name(obj));
}

static struct klp_func klp_e2e_replace_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_e2e_replace_show,
		/* Explicit position 1 must show up as ",1" like position 0. */
		.old_sympos = 1,
	},
	{}
};

static struct klp_object klp_e2e_replace_objs[] = {
	{
		.funcs = klp_e2e_replace_funcs,
		.callbacks = {
			.pre_patch = klp_e2e_pre_patch,
			.post_patch = klp_e2e_post_patch,
			.pre_unpatch = klp_e2e_pre_unpatch,
			.post_unpatch = klp_e2e_post_unpatch,
		},
	},
	{}
};

static struct klp_patch klp_e2e_replace_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_replace_objs,
	.replace = true,
};

static int __init klp_e2e_replace_init(void)
{
	return klp_enable_patch(&klp_e2e_replace_patch);
}

static void __exit klp_e2e_replace_exit(void)
{
}

module_init(klp_e2e_replace_init);
module_exit(klp_e2e_replace_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: cumulative livepatch with callbacks");
MODULE_INFO(livepatch, "Y");
