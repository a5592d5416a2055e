package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestWriteCompareRatesEachSizeAgainstTheFirst(t *testing.T) {
	t.Parallel()
	one := &Report{Targets: []string{"a"}, AchievedRate: 20000, Latency: Latency{P50: 1, P99: 4, P999: 9},
		Cost: &NodeCost{Nodes: 1, AllocsPerRequest: 50, BytesPerRequest: 4000, CPUPerRequest: 55}}
	three := &Report{Targets: []string{"a", "b", "c"}, AchievedRate: 16000, Errors: 3, Latency: Latency{P50: 2, P99: 6, P999: 12}}
	var out bytes.Buffer
	WriteCompare(&out, []*Report{one, three})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two lines:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"1", "20000", "1.00", "1", "4", "9", "0", "50", "4000", "55"},
		{"3", "16000", "0.80", "2", "6", "12", "3", "-", "-", "-"},
	} {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want %q", i+1, got, want)
		}
	}
}

func TestCompareRefusesWhatItCannotCompare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   Config
		sizes []int
		want  string
	}{
		{DefaultConfig(), nil, "no cluster sizes"},
		{DefaultConfig(), []int{0}, "a cluster of 0 nodes"},
		{Config{Targets: []string{"127.0.0.1:1"}}, []int{1}, "takes neither targets nor chaos"},
	} {
		if _, err := Compare(context.Background(), tc.cfg, tc.sizes); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.cfg.Targets, tc.sizes, err, tc.want)
		}
	}
}

func TestCostOfIsPerRequest(t *testing.T) {
	t.Parallel()
	c := costOf(costSample{nodes: 3, mallocs: 100, bytes: 1000, cpu: 1}, costSample{nodes: 3, mallocs: 1100, bytes: 11000, cpu: 1.5}, 100)
	if c.Nodes != 3 || c.AllocsPerRequest != 10 || c.BytesPerRequest != 100 || c.CPUPerRequest != 5000 {
		t.Errorf("cost %+v", c)
	}
	if costOf(costSample{}, costSample{}, 0) != nil {
		t.Error("a cost of no requests")
	}
}
