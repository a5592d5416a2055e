package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// runChaos carries out the events at their times from start, until ctx
// ends, and reports what each did.
func (c *localCluster) runChaos(ctx context.Context, events []ChaosEvent, start time.Time) []Event {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b ChaosEvent) int { return cmp.Compare(a.At, b.At) })
	var out []Event
	for _, e := range events {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(start.Add(e.At))):
		}
		at := time.Since(start).Seconds()
		node, detail, err := c.do(ctx, e)
		ev := Event{At: at, Kind: e.Kind, Node: node, Detail: detail}
		if err != nil {
			ev.Error = err.Error()
		}
		out = append(out, ev)
	}
	return out
}

// do carries out one event and says what it did.
func (c *localCluster) do(ctx context.Context, e ChaosEvent) (node, detail string, err error) {
	began := time.Now()
	switch e.Kind {
	case "kill", "leave":
		p := c.pick(e.Node)
		if p == nil {
			return e.Node, "", fmt.Errorf("no running node %q", e.Node)
		}
		if e.Kind == "kill" {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			c.mu.Lock()
			c.killed = append(c.killed, p)
			c.mu.Unlock()
			return p.name, "SIGKILL", nil
		}
		err := p.terminate(30 * time.Second)
		return p.name, fmt.Sprintf("SIGTERM; left gracefully in %s", time.Since(began).Round(time.Millisecond)), err
	case "restart":
		c.mu.Lock()
		var p *process
		for i := len(c.killed) - 1; i >= 0; i-- {
			if e.Node == "" || c.killed[i].name == e.Node {
				p = c.killed[i]
				c.killed = slices.Delete(c.killed, i, i+1)
				break
			}
		}
		c.mu.Unlock()
		if p == nil {
			return e.Node, "", fmt.Errorf("no killed node %q to restart", e.Node)
		}
		q, err := c.startNode(ctx, p.name, p.addrs)
		if err != nil {
			return p.name, "", err
		}
		return q.name, fmt.Sprintf("restarted on its addresses, serving in %s", time.Since(began).Round(time.Millisecond)), nil
	case "join":
		q, err := c.startNode(ctx, e.Node, nil)
		if err != nil {
			return e.Node, "", err
		}
		return q.name, fmt.Sprintf("joined in %s (owns tenants; not among the load's targets)", time.Since(began).Round(time.Millisecond)), nil
	}
	return e.Node, "", fmt.Errorf("unknown event %q", e.Kind)
}

// pick removes and returns the running node named name, or the last
// started if name is empty.
func (c *localCluster) pick(name string) *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.nodes) - 1; i >= 0; i-- {
		if name == "" || c.nodes[i].name == name {
			p := c.nodes[i]
			c.nodes = slices.Delete(c.nodes, i, i+1)
			return p
		}
	}
	return nil
}

// impact adds to each event what the seconds around it show: p99 and
// errors in the five seconds before and after.
func impact(events []Event, timeline []Second) {
	window := func(from, to int) (p99 float64, errors int64) {
		for _, s := range timeline {
			if s.T >= from && s.T < to {
				p99 = max(p99, s.P99)
				errors += s.Errors
			}
		}
		return p99, errors
	}
	for i := range events {
		t := int(events[i].At)
		b99, bErr := window(t-5, t)
		a99, aErr := window(t, t+5)
		note := fmt.Sprintf("p99 %.2fms → %.2fms, errors %d → %d (5s before → after)", b99, a99, bErr, aErr)
		if events[i].Detail != "" {
			note = events[i].Detail + "; " + note
		}
		events[i].Detail = note
	}
}
