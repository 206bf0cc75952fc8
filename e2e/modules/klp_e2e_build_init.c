// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_build_init - the init code of the klp e2e suite's klp-build style
 * patch modules (livepatch-e2e-build.ko, livepatch-e2e-no-replace.ko).
 *
 * Like the init code klp-build links into every patch module, it knows
 * nothing about the patch: it counts the klp_object_ext entries between
 * __start_klp_objects and __stop_klp_objects, allocates a klp_patch with one
 * klp_object per entry and one klp_func per klp_func_ext, and enables the
 * patch. Atomic replace is on unless the file is built with KLP_NO_REPLACE
 * (klp-build --no-replace does the same), so nothing in the module's data
 * records it. Loading the module is patching.
 *
 * The structures are built at run time, so kernels older than 6.19 take
 * the module: it uses nothing but klp_enable_patch().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "klp_e2e_build.h"

/* Defined by klp_e2e_build.lds around the __klp_objects section. */
extern struct klp_e2e_object_ext __start_klp_objects[];
extern struct klp_e2e_object_ext __stop_klp_objects[];

static struct klp_patch *klp_e2e_build_patch;

/* klp_e2e_build_free frees a patch built by klp_e2e_build_init, whole or in part. */
static void klp_e2e_build_free(struct klp_patch *patch)
{
	struct klp_object *obj;

	if (!patch)
		return;
	/* Every built object has its funcs array; the terminator has none. */
	for (obj = patch->objs; obj && obj->funcs; obj++)
		kfree(obj->funcs);
	kfree(patch->objs);
	kfree(patch);
}

static int __init klp_e2e_build_init(void)
{
	size_t nr_objs = __stop_klp_objects - __start_klp_objects;
	struct klp_patch *patch;
	size_t i, j;
	int ret;

	if (!nr_objs) {
		pr_err("no klp_object_ext entries in __klp_objects\n");
		return -EINVAL;
	}
	patch = kzalloc(sizeof(*patch), GFP_KERNEL);
	if (!patch)
		return -ENOMEM;
	/* One more zeroed entry ends each array, as klp_enable_patch expects. */
	patch->objs = kcalloc(nr_objs + 1, sizeof(*patch->objs), GFP_KERNEL);
	if (!patch->objs) {
		ret = -ENOMEM;
		goto err;
	}
	for (i = 0; i < nr_objs; i++) {
		const struct klp_e2e_object_ext *ext = &__start_klp_objects[i];
		struct klp_object *obj = &patch->objs[i];

		obj->funcs = kcalloc(ext->nr_funcs + 1, sizeof(*obj->funcs), GFP_KERNEL);
		if (!obj->funcs) {
			ret = -ENOMEM;
			goto err;
		}
		for (j = 0; j < ext->nr_funcs; j++) {
			obj->funcs[j].old_name = ext->funcs[j].old_name;
			obj->funcs[j].new_func = ext->funcs[j].new_func;
			obj->funcs[j].old_sympos = ext->funcs[j].sympos;
		}
		obj->name = ext->name;
		obj->callbacks = ext->callbacks;
	}
	patch->mod = THIS_MODULE;
#ifdef KLP_NO_REPLACE
	patch->replace = false;
#else
	patch->replace = true;
#endif
	ret = klp_enable_patch(patch);
	if (ret)
		goto err;
	klp_e2e_build_patch = patch;
	return 0;
err:
	/* A failed klp_enable_patch has released the patch's kobjects. */
	klp_e2e_build_free(patch);
	return ret;
}

/*
 * The module can only be removed once the patch is disabled or replaced and
 * the kernel has dropped its reference, so nothing refers to the structures.
 */
static void __exit klp_e2e_build_exit(void)
{
	klp_e2e_build_free(klp_e2e_build_patch);
}

module_init(klp_e2e_build_init);
module_exit(klp_e2e_build_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: livepatch built at init from __klp_objects, as klp-build makes them");
MODULE_INFO(livepatch, "Y");
