package gossip

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// A member's events are applied in the order gossip sent them, whoever
// waits for a join meanwhile: a member that joined and then became ready
// ends ready. WaitSynced once applied events itself, beside Run, and could
// apply the join after the update; gossip then sent nothing more, and the
// member stayed out of the ring.
func TestEventsApplyInOrderWhileWaitingForAJoin(t *testing.T) {
	t.Parallel()
	m, err := New("self", "127.0.0.1:0", Meta{API: "127.0.0.1:1"}, Security{}, slog.New(slog.NewTextHandler(io.Discard, nil)), log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go m.Run(ctx, func() {})
	node := func(ready bool) *memberlist.Node {
		meta, _ := json.Marshal(Meta{API: "127.0.0.1:2", Ready: ready})
		return &memberlist.Node{Name: "other", Meta: meta}
	}
	for i := range 300 {
		m.events <- memberlist.NodeEvent{Event: memberlist.NodeJoin, Node: node(false)}
		m.events <- memberlist.NodeEvent{Event: memberlist.NodeUpdate, Node: node(true)}
		m.WaitSynced(time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for !m.ready("other") {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the member is not ready after its update was sent", i)
			}
			time.Sleep(time.Millisecond)
		}
		m.mu.Lock()
		delete(m.table, "other")
		m.mu.Unlock()
	}
}

// ready reports whether name is in the list as ready, once no event waits.
func (m *Membership) ready(name string) bool {
	if len(m.events) > 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.table[name].Ready
}
