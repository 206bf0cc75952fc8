// Package poll waits for a condition on kernel state with a fast,
// capped exponential back-off.
//
// sysfs notifies no one of a change of the files klp waits on
// (/sys/module/<m>/refcnt, a patch directory disappearing, a livepatch's
// transition attribute: sysfs poll() support is per-attribute and these do
// not call sysfs_notify), so waiting on them means polling. [Until] checks
// immediately, then after 1, 2, 4, 8 ms and every 10 ms thereafter: short
// waits end within a millisecond or two, long waits are noticed within
// about 10 ms. The wait for a transition polls only where it cannot sleep on
// the kernel log instead (livepatch's WaitTransition).
//
//	err := poll.Until(ctx, func() (bool, error) {
//		v, err := readRefcnt()
//		return v == 0, err
//	}, poll.Options{})
package poll
