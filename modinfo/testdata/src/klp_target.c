// SPDX-License-Identifier: GPL-2.0
/*
 * klp_target: test fixture for klp's modinfo parser. An ordinary module
 * (not a livepatch); klp_twoobj patches its klp_target_value function.
 */
#include <linux/module.h>
#include <linux/kernel.h>

static int answer = 42;
module_param(answer, int, 0444);
MODULE_PARM_DESC(answer, "value returned by klp_target_value");

noinline int klp_target_value(void)
{
	return answer;
}
EXPORT_SYMBOL_GPL(klp_target_value);

static int __init klp_target_init(void)
{
	pr_info("klp_target: %d\n", klp_target_value());
	return 0;
}

static void __exit klp_target_exit(void)
{
}

module_init(klp_target_init);
module_exit(klp_target_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("klp project");
MODULE_DESCRIPTION("klp test fixture: ordinary target module");
MODULE_ALIAS("klp-target-alias");
