// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_plain - an ordinary module, not a livepatch. klp must not list it
 * as a patch, and its taint flags must not include K.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>

static int __init klp_e2e_plain_init(void)
{
	pr_info("loaded\n");
	return 0;
}

static void __exit klp_e2e_plain_exit(void)
{
	pr_info("unloaded\n");
}

module_init(klp_e2e_plain_init);
module_exit(klp_e2e_plain_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: plain module");
