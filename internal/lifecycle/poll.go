package lifecycle

import (
	"context"

	"github.com/klp-project/klp/internal/poll"
)

func waitFor(ctx context.Context, cond func() (bool, error)) error {
	return poll.Until(ctx, cond, poll.Options{})
}
