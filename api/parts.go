package api

import (
	"context"
	"errors"
	"time"
)

// rollbackTimeout bounds the stop of the parts already started when a
// later one fails: a leave or a drain must not hang a failed start.
const rollbackTimeout = 10 * time.Second

// Part is one piece of a running node. A node's parts start in the order
// of their list and stop in reverse, so that what a part needs is up
// before it and still up after it; the list is the documentation of that
// order.
type Part struct {
	Name string
	// Start brings the part up; nil for a part that only acts at stop.
	Start func(ctx context.Context) error
	// Stop takes it down within ctx; nil for a part with nothing to stop.
	Stop func(ctx context.Context) error
}

// Start starts parts in order. If one fails, those already started stop,
// in reverse, and its error is returned. The function it returns stops
// every part, in reverse; call it once.
func Start(ctx context.Context, parts []Part) (stop func(context.Context) error, err error) {
	stopAll := func(ctx context.Context, started []Part) error {
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			if p := started[i]; p.Stop != nil {
				if err := p.Stop(ctx); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	for i, p := range parts {
		if p.Start == nil {
			continue
		}
		if err := p.Start(ctx); err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			_ = stopAll(rctx, parts[:i])
			cancel()
			return nil, err // the part names what failed (a flag, an address)
		}
	}
	return func(ctx context.Context) error { return stopAll(ctx, parts) }, nil
}
