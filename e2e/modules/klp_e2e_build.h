/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The patch description of klp-build (Linux 6.19) modules, reproduced for
 * the klp e2e suite so that its modules load on kernels that predate it.
 *
 * klp-build does not emit a static struct klp_patch. Each object it diffs
 * contributes one struct klp_object_ext entry to the __klp_objects section
 * and its functions as struct klp_func_ext entries to __klp_funcs; the
 * module's init code walks __klp_objects (bounded by __start_klp_objects
 * and __stop_klp_objects, which the module linker script defines), builds
 * the klp_patch, klp_object and klp_func structures from the entries and
 * calls klp_enable_patch().
 *
 * The structures below have the layout of 6.19's klp_func_ext and
 * klp_object_ext on 64-bit kernels (checked at build time), under names of
 * our own so that they cannot clash with a kernel that defines the real
 * ones. struct klp_callbacks is the kernel's own.
 */
#ifndef KLP_E2E_BUILD_H
#define KLP_E2E_BUILD_H

#include <linux/build_bug.h>
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/stddef.h>

/* One replaced function: what klp_func's first three fields say. */
struct klp_e2e_func_ext {
	const char *old_name;
	void *new_func;
	unsigned long sympos;
};

/* One patched object; name NULL means vmlinux. */
struct klp_e2e_object_ext {
	const char *name;
	struct klp_e2e_func_ext *funcs;
	struct klp_callbacks callbacks;
	unsigned int nr_funcs;
};

static_assert(sizeof(struct klp_e2e_func_ext) == 24);
static_assert(offsetof(struct klp_e2e_func_ext, sympos) == 16);
static_assert(sizeof(struct klp_e2e_object_ext) == 64);
static_assert(offsetof(struct klp_e2e_object_ext, callbacks) == 16);
static_assert(offsetof(struct klp_e2e_object_ext, nr_funcs) == 56);

/*
 * The entries go to the sections by name. The explicit alignment keeps the
 * compiler from padding a large variable to 16 or 32 bytes: entries from
 * several objects must lie back to back in __klp_objects.
 */
#define KLP_E2E_FUNCS(sym)						\
	static struct klp_e2e_func_ext sym[]				\
	__section("__klp_funcs") __aligned(8) __used

#define KLP_E2E_OBJECT(sym, objname, funcs_array)			\
	static struct klp_e2e_object_ext sym				\
	__section("__klp_objects") __aligned(8) __used = {		\
		.name = objname,					\
		.funcs = funcs_array,					\
		.nr_funcs = ARRAY_SIZE(funcs_array),			\
	}

#endif /* KLP_E2E_BUILD_H */
