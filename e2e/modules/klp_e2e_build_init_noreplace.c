// SPDX-License-Identifier: GPL-2.0
/*
 * The init code of klp_e2e_build_init.c, compiled with KLP_NO_REPLACE for
 * livepatch-e2e-no-replace.ko (Kbuild sets the flag), as klp-build
 * --no-replace compiles its init code.
 */
#include "klp_e2e_build_init.c"
