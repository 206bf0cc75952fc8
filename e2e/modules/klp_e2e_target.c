// SPDX-License-Identifier: GPL-2.0
/*
 * klp_e2e_target - a plain module that klp_e2e_target_patch patches, built so
 * that a livepatch transition can be held open on demand.
 *
 * Two functions are patched, each able to keep a task asleep inside it:
 *
 * - klp_e2e_target_work() runs in the kthread "klp_e2e_busy". While the
 *   parameter block_kthread is true the kthread sleeps inside it, so the
 *   stack check of a transition that patches it fails for that kthread.
 *   kthread_waiting reads 1 while the kthread is in there.
 *
 * - klp_e2e_target_read() is the read handler of /proc/klp_e2e_target. While
 *   block_read is true a reader sleeps interruptibly inside it, so a user
 *   process (say `cat /proc/klp_e2e_target`) blocks the transition. Any
 *   signal (SIGSTOP from `kgr poke`, or the kernel's fake signal) makes the
 *   read return -ERESTARTSYS: the task passes through the kernel exit path,
 *   where livepatch switches it, and the restarted read runs the patched
 *   function, which does not sleep. read_waiting counts sleeping readers.
 *   With read_uninterruptible set they sleep uninterruptibly (state D)
 *   instead, so that no signal moves them, not even the kernel's own.
 *
 * Unpatched, the file reads "unpatched"; klp_e2e_target_patch makes it read
 * "patched".
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

static bool block_kthread;
module_param(block_kthread, bool, 0644);
MODULE_PARM_DESC(block_kthread, "keep the kthread asleep in klp_e2e_target_work()");

static bool block_read;
module_param(block_read, bool, 0644);
MODULE_PARM_DESC(block_read, "keep readers of /proc/klp_e2e_target asleep in klp_e2e_target_read()");

static bool read_uninterruptible;
module_param(read_uninterruptible, bool, 0644);
MODULE_PARM_DESC(read_uninterruptible, "readers blocked by block_read sleep uninterruptibly (state D): no signal makes them leave");

static atomic_t kthread_waiting_cnt = ATOMIC_INIT(0);
static atomic_t read_waiting_cnt = ATOMIC_INIT(0);

static int klp_e2e_get_atomic(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read((atomic_t *)kp->arg));
}

static const struct kernel_param_ops klp_e2e_atomic_ops = {
	.get = klp_e2e_get_atomic,
};

module_param_cb(kthread_waiting, &klp_e2e_atomic_ops, &kthread_waiting_cnt, 0444);
MODULE_PARM_DESC(kthread_waiting, "1 while the kthread sleeps in klp_e2e_target_work()");
module_param_cb(read_waiting, &klp_e2e_atomic_ops, &read_waiting_cnt, 0444);
MODULE_PARM_DESC(read_waiting, "number of readers asleep in klp_e2e_target_read()");

static struct task_struct *klp_e2e_thread;
static struct proc_dir_entry *klp_e2e_proc;

/* Not static: global functions are never cloned or renamed by GCC. */
void klp_e2e_target_work(void);
ssize_t klp_e2e_target_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);

noinline void klp_e2e_target_work(void)
{
	if (!READ_ONCE(block_kthread))
		return;
	atomic_inc(&kthread_waiting_cnt);
	while (READ_ONCE(block_kthread) && !kthread_should_stop())
		schedule_timeout_interruptible(msecs_to_jiffies(20));
	atomic_dec(&kthread_waiting_cnt);
}

noinline ssize_t klp_e2e_target_read(struct file *file, char __user *buf,
				     size_t count, loff_t *ppos)
{
	static const char msg[] = "unpatched\n";
	ssize_t ret = 0;

	if (*ppos == 0 && READ_ONCE(block_read)) {
		atomic_inc(&read_waiting_cnt);
		while (READ_ONCE(block_read)) {
			if (READ_ONCE(read_uninterruptible)) {
				msleep(20);
				continue;
			}
			if (msleep_interruptible(20) || signal_pending(current)) {
				ret = -ERESTARTSYS;
				break;
			}
		}
		atomic_dec(&read_waiting_cnt);
	}
	if (ret)
		return ret;
	return simple_read_from_buffer(buf, count, ppos, msg, sizeof(msg) - 1);
}

static const struct proc_ops klp_e2e_proc_ops = {
	.proc_read = klp_e2e_target_read,
	.proc_lseek = default_llseek,
};

static int klp_e2e_thread_fn(void *unused)
{
	while (!kthread_should_stop()) {
		klp_e2e_target_work();
		/* Sleep outside the patched function between rounds. */
		schedule_timeout_interruptible(msecs_to_jiffies(20));
	}
	return 0;
}

static int __init klp_e2e_target_init(void)
{
	klp_e2e_proc = proc_create("klp_e2e_target", 0444, NULL, &klp_e2e_proc_ops);
	if (!klp_e2e_proc)
		return -ENOMEM;
	klp_e2e_thread = kthread_run(klp_e2e_thread_fn, NULL, "klp_e2e_busy");
	if (IS_ERR(klp_e2e_thread)) {
		proc_remove(klp_e2e_proc);
		return PTR_ERR(klp_e2e_thread);
	}
	return 0;
}

static void __exit klp_e2e_target_exit(void)
{
	/* Release a reader still asleep, or proc_remove() would wait for it. */
	WRITE_ONCE(block_read, false);
	WRITE_ONCE(block_kthread, false);
	kthread_stop(klp_e2e_thread);
	proc_remove(klp_e2e_proc);
}

module_init(klp_e2e_target_init);
module_exit(klp_e2e_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("klp e2e: target module that can block a livepatch transition");
