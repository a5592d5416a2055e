package api

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestPartsStartInOrderAndStopInReverse(t *testing.T) {
	t.Parallel()
	var log []string
	part := func(name string, startErr error) Part {
		return Part{
			Name:  name,
			Start: func(context.Context) error { log = append(log, "start "+name); return startErr },
			Stop:  func(context.Context) error { log = append(log, "stop "+name); return nil },
		}
	}
	stopOnly := Part{Name: "leave", Stop: func(context.Context) error { log = append(log, "stop leave"); return nil }}
	stop, err := Start(t.Context(), []Part{part("a", nil), stopOnly, part("b", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start a", "start b", "stop b", "stop leave", "stop a"}; !slices.Equal(log, want) {
		t.Fatalf("order %v, want %v", log, want)
	}

	// A part that fails to start: those before it stop, in reverse; it
	// and those after it do not.
	log = nil
	boom := errors.New("boom")
	if _, err := Start(t.Context(), []Part{part("a", nil), part("b", nil), part("c", boom), part("d", nil)}); !errors.Is(err, boom) {
		t.Fatalf("start: %v, want the failing part's error", err)
	}
	if want := []string{"start a", "start b", "start c", "stop b", "stop a"}; !slices.Equal(log, want) {
		t.Fatalf("rollback %v, want %v", log, want)
	}
}

func TestAServerNotStartedByStartServerSaysSo(t *testing.T) {
	t.Parallel()
	if err := NewServer(ServerConfig{}).Shutdown(t.Context()); !errors.Is(err, errNotStarted) {
		t.Fatalf("Shutdown = %v, want errNotStarted", err)
	}
}
