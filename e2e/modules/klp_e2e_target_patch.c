// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_target_patch - a livepatch of the module klp_e2e_target (not of
 * vmlinux) for the klp e2e suite.
 *
 * - Loaded while klp_e2e_target is absent, its object reads patched=0 until
 *   the target module is loaded.
 * - Loaded while a task sleeps in one of the two patched functions, its
 *   transition stays open until the task leaves (see klp_e2e_target.c).
 * - The replacement of klp_e2e_target_work() can itself hold the kthread
 *   while this module's parameter block is true, which keeps an *unpatching*
 *   transition open after `echo 0 > enabled`. waiting reads 1 meanwhile.
 * - The replacement read handler returns "patched" without sleeping.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>

static bool block;
module_param(block, bool, 0644);
MODULE_PARM_DESC(block, "keep the target's kthread asleep in the patched klp_e2e_target_work()");

static int waiting;
module_param(waiting, int, 0444);
MODULE_PARM_DESC(waiting, "1 while the kthread sleeps in the patched klp_e2e_target_work()");

static void klp_e2e_patched_work(void)
{
	if (!READ_ONCE(block))
		return;
	WRITE_ONCE(waiting, 1);
	while (READ_ONCE(block) && !kthread_should_stop())
		schedule_timeout_interruptible(msecs_to_jiffies(20));
	WRITE_ONCE(waiting, 0);
}

static ssize_t klp_e2e_patched_read(struct file *file, char __user *buf,
				    size_t count, loff_t *ppos)
{
	static const char msg[] = "patched\n";

	return simple_read_from_buffer(buf, count, ppos, msg, sizeof(msg) - 1);
}

static struct klp_func klp_e2e_target_funcs[] = {
	{
		.old_name = "klp_e2e_target_work",
		.new_func = klp_e2e_patched_work,
	},
	{
		.old_name = "klp_e2e_target_read",
		.new_func = klp_e2e_patched_read,
	},
	{}
};

static struct klp_object klp_e2e_target_objs[] = {
	{
		.name = "klp_e2e_target",
		.funcs = klp_e2e_target_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_target_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_target_objs,
};

static int __init klp_e2e_target_patch_init(void)
{
	return klp_enable_patch(&klp_e2e_target_patch);
}

static void __exit klp_e2e_target_patch_exit(void)
{
}

module_init(klp_e2e_target_patch_init);
module_exit(klp_e2e_target_patch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch of the klp_e2e_target module");
MODULE_INFO(livepatch, "Y");
