// Package poll waits for a condition on kernel state with a fast,
// capped exponential back-off.
//
// The kernel offers no notification for the files klp waits on (a
// livepatch's transition attribute, /sys/module/<m>/refcnt, a patch
// directory disappearing: sysfs poll() support is per-attribute and these
// do not call sysfs_notify), so waiting means polling. [Until] checks
// immediately, then after 1, 2, 4, 8 ms and every 10 ms thereafter: short
// waits end within a millisecond or two, long waits are noticed within
// about 10 ms, and the CPU cost stays negligible.
//
//	err := poll.Until(ctx, func() (bool, error) {
//		v, err := readTransition()
//		return v == 0, err
//	}, poll.Options{})
package poll
