// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_kprobe - a plain module that registers one kprobe, for the klp e2e
 * suite's checks of other ftrace users.
 *
 * The probe sits on the entry of the function named by the parameter
 * "symbol" (default cmdline_proc_show). With post=1 (the default) it has a
 * post_handler: on a function's ftrace call site such a kprobe modifies the
 * instruction pointer (FTRACE_OPS_FL_IPMODIFY), so a live patch of the
 * function cannot be enabled while it is there (EBUSY), and the probe
 * cannot be registered on a function a live patch already redirects. With
 * post=0 the probe has only a pre_handler, which coexists with a patch.
 * "hits" counts the pre_handler's calls.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static char *symbol = "cmdline_proc_show";
module_param(symbol, charp, 0444);
MODULE_PARM_DESC(symbol, "function to probe at its entry");

static bool post = true;
module_param(post, bool, 0444);
MODULE_PARM_DESC(post, "give the probe a post_handler (IPMODIFY on the ftrace call site)");

static atomic_t hits_cnt = ATOMIC_INIT(0);

static int klp_e2e_get_hits(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&hits_cnt));
}

static const struct kernel_param_ops klp_e2e_hits_ops = {
	.get = klp_e2e_get_hits,
};
module_param_cb(hits, &klp_e2e_hits_ops, NULL, 0444);
MODULE_PARM_DESC(hits, "calls of the pre_handler");

static int klp_e2e_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_inc(&hits_cnt);
	return 0;
}

static void klp_e2e_post(struct kprobe *p, struct pt_regs *regs,
			 unsigned long flags)
{
}

static struct kprobe klp_e2e_probe = {
	.pre_handler = klp_e2e_pre,
};

static int __init klp_e2e_kprobe_init(void)
{
	int ret;

	klp_e2e_probe.symbol_name = symbol;
	if (post)
		klp_e2e_probe.post_handler = klp_e2e_post;
	ret = register_kprobe(&klp_e2e_probe);
	if (ret)
		pr_err("register_kprobe on %s failed: %d\n", symbol, ret);
	return ret;
}

static void __exit klp_e2e_kprobe_exit(void)
{
	unregister_kprobe(&klp_e2e_probe);
}

module_init(klp_e2e_kprobe_init);
module_exit(klp_e2e_kprobe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: one kprobe, with or without a post_handler");
