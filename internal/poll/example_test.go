package poll_test

import (
	"context"
	"fmt"

	"github.com/klp-project/klp/internal/poll"
)

func ExampleUntil() {
	checks := 0
	err := poll.Until(context.Background(), func() (bool, error) {
		checks++ // e.g. read /sys/kernel/livepatch/<p>/transition
		return checks == 3, nil
	}, poll.Options{})
	fmt.Println(err, checks)
	// Output: <nil> 3
}
