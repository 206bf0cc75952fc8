// SPDX-License-Identifier: GPL-2.0
/*
 * klp_klpsym: test fixture for klp's modinfo parser. A livepatch whose
 * replacement function calls a (pretend) static vmlinux function that the
 * module cannot link against. The call goes through a symbol named in the
 * livepatch ELF format, ".klp.sym.vmlinux.<name>,<sympos>", given with an asm
 * label. The compiler leaves it as an undefined symbol; klpconvert (our own
 * small Go tool next to this file) then moves its relocations into a
 * ".klp.rela.vmlinux..text.klp_klpsym_cmdline_show" section with
 * SHF_RELA_LIVEPATCH and marks the symbol SHN_LIVEPATCH, which is what
 * kpatch-build's create-klp-module or upstream klp-build do for real patches.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

extern int klp_klpsym_static_helper(struct seq_file *m)
	__asm__("\".klp.sym.vmlinux.klp_static_helper,2\"");

static noinline int klp_klpsym_cmdline_show(struct seq_file *m, void *v)
{
	return klp_klpsym_static_helper(m);
}

static struct klp_func klp_klpsym_funcs[] = {
	{
		.old_name = "cmdline_proc_show",
		.new_func = klp_klpsym_cmdline_show,
	}, { }
};

static struct klp_object klp_klpsym_objs[] = {
	{
		.funcs = klp_klpsym_funcs,
	}, { }
};

static struct klp_patch klp_klpsym_patch = {
	.mod = THIS_MODULE,
	.objs = klp_klpsym_objs,
};

static int __init klp_klpsym_init(void)
{
	return klp_enable_patch(&klp_klpsym_patch);
}

static void __exit klp_klpsym_exit(void)
{
}

module_init(klp_klpsym_init);
module_exit(klp_klpsym_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("klp project");
MODULE_DESCRIPTION("klp test fixture: livepatch with klp relocations");
MODULE_INFO(livepatch, "Y");
