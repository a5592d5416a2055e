package limiter

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const benchKeys = 1_000_000

func benchStore(b *testing.B) (*Store, []string) {
	return benchStoreN(b, benchKeys)
}

func benchStoreN(b *testing.B, keys int) (*Store, []string) {
	b.Helper()
	tenants := make([]string, keys)
	for i := range tenants {
		tenants[i] = "tenant-" + strconv.Itoa(i)
	}
	s := NewStore(Options{MaxEntries: 2 * benchKeys})
	lim := Limit{Name: "rpm", Limit: 1000, Period: time.Minute}
	for _, t := range tenants {
		if _, err := s.Check(t, lim, 0); err != nil {
			b.Fatal(err)
		}
	}
	// Finish the collection the set-up started so it does not run inside
	// the timed loop.
	runtime.GC()
	return s, tenants
}

// BenchmarkCheck is one goroutine checking a token bucket over a million
// distinct keys, so most lookups miss the CPU cache as they would in
// production.
func BenchmarkCheck(b *testing.B) { benchChecks(b, false) }

// BenchmarkCheckTracked is BenchmarkCheck on a store that notes changes
// for replication, collected every 10,000 checks as a replicator would
// (its collection included): what replication adds to a check.
func BenchmarkCheckTracked(b *testing.B) { benchChecks(b, true) }

func benchChecks(b *testing.B, track bool) {
	s, tenants := benchStore(b)
	s.track = track
	lim := Limit{Name: "rpm", Limit: 1000, Period: time.Minute}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Check(tenants[i%len(tenants)], lim, 1); err != nil {
			b.Fatal(err)
		}
		if track && i%10_000 == 9_999 {
			s.Changes(func(string, []EntryState) {})
		}
	}
}

// BenchmarkMemoryLatency is the floor under BenchmarkCheck on the machine
// it runs on: loads from random places in a region as large as the store's
// table at a million tenants (built and measured first), each address read
// from the one before so that no two overlap. A check among a million
// tenants cannot avoid at least one such access, as their records do not
// fit in the CPU's caches; compare the two within one run.
func BenchmarkMemoryLatency(b *testing.B) {
	s, _ := benchStore(b)
	size := 0
	for i := range s.shards {
		size += len(s.shards[i].table) * int(unsafe.Sizeof(tenantState{}))
	}
	s = nil
	lines := size / 64 // one load per 64-byte cache line
	chain := make([]uint64, lines*8)
	order := rand.New(rand.NewPCG(1, 2)).Perm(lines)
	for i, line := range order {
		chain[line*8] = uint64(order[(i+1)%lines] * 8)
	}
	runtime.GC()
	var at uint64
	b.ReportMetric(float64(size)/(1<<20), "MiB")
	b.ResetTimer()
	for b.Loop() {
		at = chain[at]
	}
	if at%8 != 0 {
		b.Fatal("the chain left its cache lines")
	}
}

// BenchmarkBytesPerBucket reports the heap a store takes per limit it
// holds (bytes/bucket, from runtime.MemStats after a collection, the
// tenants' names included) at a million tenants: with one token bucket
// each, and with the gateway's three (requests and tokens per minute, and
// the month's tokens).
func BenchmarkBytesPerBucket(b *testing.B) {
	one := []Limit{{Name: "rpm", Limit: 1000, Period: time.Minute}}
	three := append(one,
		Limit{Name: "tpm", Limit: 1_000_000, Period: time.Minute},
		Limit{Name: "month", Algorithm: CalendarMonth, Limit: 1 << 40})
	for _, c := range []struct {
		name   string
		limits []Limit
	}{{"limits=1", one}, {"limits=3", three}} {
		b.Run(c.name, func(b *testing.B) {
			tenants := make([]string, benchKeys)
			for i := range tenants {
				tenants[i] = "tenant-" + strconv.Itoa(i)
			}
			var perBucket float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := NewStore(Options{MaxEntries: 4 * benchKeys})
				for _, t := range tenants {
					for _, l := range c.limits {
						if _, err := s.Check(t, l, 1); err != nil {
							b.Fatal(err)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if s.Len() != len(tenants)*len(c.limits) {
					b.Fatalf("the store holds %d limits, want %d", s.Len(), len(tenants)*len(c.limits))
				}
				perBucket = float64(after.HeapAlloc-before.HeapAlloc) / float64(s.Len())
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perBucket, "bytes/bucket")
		})
	}
}

// BenchmarkCheckHot is BenchmarkCheck over 1,000 keys, which stay in the CPU
// cache: the cost of a decision without the memory latency of a large store.
func BenchmarkCheckHot(b *testing.B) {
	s, tenants := benchStoreN(b, 1000)
	lim := Limit{Name: "rpm", Limit: 1000, Period: time.Minute}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Check(tenants[i%len(tenants)], lim, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	s, tenants := benchStore(b)
	lim := Limit{Name: "rpm", Limit: 1000, Period: time.Minute}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) * 7919)
		for pb.Next() {
			i++
			if _, err := s.Check(tenants[i%len(tenants)], lim, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkReserve3(b *testing.B) {
	s, tenants := benchStore(b)
	reqs := []Request{
		{Limit: Limit{Name: "rpm", Limit: 1000, Period: time.Minute}, Hits: 1},
		{Limit: Limit{Name: "tpm", Limit: 1_000_000, Period: time.Minute}, Hits: 500},
		{Limit: Limit{Name: "month", Algorithm: CalendarMonth, Limit: 1 << 40}, Hits: 500},
	}
	out := make([]Result, len(reqs))
	for _, t := range tenants[:1000] {
		_, _ = s.Reserve(t, reqs, out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Reserve(tenants[i%1000], reqs, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSweepTail is what the idle sweep costs a check's tail: the
// p99 and p99.9 of single checks among a million tenants (p99-ns,
// p99.9-ns), with nothing else running and while Sweep runs over the store
// without pause (every tenant in use: each pass visits them all and
// forgets none, the longest a pass can take short of forgetting).
func BenchmarkSweepTail(b *testing.B) {
	for _, sweeping := range []bool{false, true} {
		b.Run("sweeping="+strconv.FormatBool(sweeping), func(b *testing.B) {
			s, tenants := benchStore(b)
			lim := Limit{Name: "rpm", Limit: 1000, Period: time.Minute}
			stop := make(chan struct{})
			var sweeps atomic.Int64
			var wg sync.WaitGroup
			if sweeping {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
							s.Sweep()
							sweeps.Add(1)
						}
					}
				})
			}
			h := hdrhistogram.New(1, int64(time.Second), 3)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if _, err := s.Check(tenants[i%len(tenants)], lim, 1); err != nil {
					b.Fatal(err)
				}
				_ = h.RecordValue(int64(time.Since(start)))
			}
			close(stop)
			wg.Wait()
			if sweeping && sweeps.Load() == 0 {
				b.Fatal("no sweep ran during the checks")
			}
			b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-ns")
			b.ReportMetric(float64(h.ValueAtQuantile(99.9)), "p99.9-ns")
		})
	}
}
