// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_pinned - klp_e2e_target_patch built under another name.
 *
 * The scenario that forces an *unpatching* transition uses it: the kernel
 * then never drops the module's reference, so it stays loaded until the
 * guest powers off. Its own name keeps every other scenario, which loads
 * klp_e2e_target_patch, unaffected. Its parameters are those of
 * klp_e2e_target_patch, under /sys/module/klp_e2e_pinned/parameters/.
 */
#include "klp_e2e_target_patch.c"
