// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_lockdown - a livepatch of security_locked_down() for the klp e2e
 * suite: a function that a BPF fmod_ret program may attach to on Debian's
 * kernels, which lack CONFIG_FUNCTION_ERROR_INJECTION (the verifier then
 * lets fmod_ret attach only to security_* functions).
 *
 * The replacement answers -EACCES for LOCKDOWN_DEV_MEM, so while the patch
 * is in effect open("/dev/mem") fails with EACCES where it succeeds on the
 * unpatched kernel (root, lockdown "none"). Every other reason gets 0,
 * which is what the original answers only on a kernel that is not locked
 * down: the module refuses to load (EPERM) on a kernel that is.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/security.h>

static int klp_e2e_locked_down(enum lockdown_reason what)
{
	if (what == LOCKDOWN_DEV_MEM)
		return -EACCES;
	return 0;
}

static struct klp_func klp_e2e_lockdown_funcs[] = {
	{
		.old_name = "security_locked_down",
		.new_func = klp_e2e_locked_down,
	},
	{}
};

static struct klp_object klp_e2e_lockdown_objs[] = {
	{
		.funcs = klp_e2e_lockdown_funcs,
	},
	{}
};

static struct klp_patch klp_e2e_lockdown_patch = {
	.mod = THIS_MODULE,
	.objs = klp_e2e_lockdown_objs,
};

static int __init klp_e2e_lockdown_init(void)
{
	/*
	 * The replacement is only right where nothing is locked down; any
	 * lockdown (integrity or confidentiality) requires module
	 * signatures. (Not LOCKDOWN_DEV_MEM: the suite's BPF program answers
	 * that one.)
	 */
	if (security_locked_down(LOCKDOWN_MODULE_SIGNATURE)) {
		pr_err("the kernel is locked down: refusing to patch security_locked_down()\n");
		return -EPERM;
	}
	return klp_enable_patch(&klp_e2e_lockdown_patch);
}

static void __exit klp_e2e_lockdown_exit(void)
{
}

module_init(klp_e2e_lockdown_init);
module_exit(klp_e2e_lockdown_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch of security_locked_down (LOCKDOWN_DEV_MEM answers EACCES)");
MODULE_INFO(livepatch, "Y");
