// SPDX-License-Identifier: GPL-2.0
/*
 * klp_twoobj: test fixture for klp's modinfo parser. A livepatch with two
 * objects: vmlinux and the klp_target module, plus a pre-patch callback on the
 * module object so that klp_object.callbacks holds a code pointer.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int klp_twoobj_meminfo_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_twoobj\n");
	return 0;
}

static int klp_twoobj_target_value(void)
{
	return 43;
}

static int klp_twoobj_pre_patch(struct klp_object *obj)
{
	pr_info("klp_twoobj: pre-patch %s\n", obj->name);
	return 0;
}

static struct klp_func klp_twoobj_vmlinux_funcs[] = {
	{
		.old_name = "meminfo_proc_show",
		.new_func = klp_twoobj_meminfo_show,
	}, { }
};

static struct klp_func klp_twoobj_target_funcs[] = {
	{
		.old_name = "klp_target_value",
		.new_func = klp_twoobj_target_value,
	}, { }
};

static struct klp_object klp_twoobj_objs[] = {
	{
		.name = NULL,
		.funcs = klp_twoobj_vmlinux_funcs,
	}, {
		.name = "klp_target",
		.funcs = klp_twoobj_target_funcs,
		.callbacks = {
			.pre_patch = klp_twoobj_pre_patch,
		},
	}, { }
};

static struct klp_patch klp_twoobj_patch = {
	.mod = THIS_MODULE,
	.objs = klp_twoobj_objs,
};

static int __init klp_twoobj_init(void)
{
	return klp_enable_patch(&klp_twoobj_patch);
}

static void __exit klp_twoobj_exit(void)
{
}

module_init(klp_twoobj_init);
module_exit(klp_twoobj_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("klp project");
MODULE_DESCRIPTION("klp test fixture: livepatch with two objects");
MODULE_INFO(livepatch, "Y");
