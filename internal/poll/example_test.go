package poll_test

import (
	"context"
	"fmt"
	"time"

	"github.com/klp-project/klp/internal/poll"
)

func ExampleUntil() {
	deadline := time.Now().Add(30 * time.Millisecond)
	checks := 0
	err := poll.Until(context.Background(), func() (bool, error) {
		checks++ // e.g. read /sys/kernel/livepatch/<p>/transition
		return time.Now().After(deadline), nil
	}, poll.Options{})
	fmt.Println(err, checks < 10)
	// Output: <nil> true
}
