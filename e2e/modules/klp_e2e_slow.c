// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_slow - a livepatch whose init sleeps before it enables the patch,
 * for the klp e2e suite's Debian guest: the suite stops the machine (kills
 * QEMU) while the boot's klp.service is loading it, and checks that the next
 * boot skips it and says why.
 *
 * It patches version_proc_show(), so that /proc/version shows a marker once
 * it is in effect (which the suite never lets happen at boot).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static unsigned int delay_s = 60;
module_param(delay_s, uint, 0444);
MODULE_PARM_DESC(delay_s, "seconds to sleep in init before enabling the patch");

static int klp_e2e_slow_show(struct seq_file *m, void *v)
{
	seq_puts(m, "klp_e2e_slow: this has been live patched\n");
	return 0;
}

static struct klp_func klp_e2e_slow_funcs[] = {
	{
		.old_name = "version_proc_show",
		.new_func = klp_e2e_slow_show,
	},
	{}
};

static struct klp_object klp_e2e_slow_objs[] = {
	{
		.funcs = klp_e2e_slow_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_slow_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_slow_objs,
};

static int __init klp_e2e_slow_init(void)
{
	/*
	 * KERN_ERR, not an error: Debian sets the console log level to 4
	 * (procps' 10-console-messages.conf), and the suite watches the serial
	 * console for this line to stop the machine at this moment.
	 */
	pr_err("init: sleeping %u s before enabling the patch\n", delay_s);
	msleep(delay_s * 1000);
	return klp_enable_patch(&klp_e2e_slow_patch);
}

static void __exit klp_e2e_slow_exit(void)
{
}

module_init(klp_e2e_slow_init);
module_exit(klp_e2e_slow_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch of version_proc_show that loads slowly");
MODULE_INFO(livepatch, "Y");
