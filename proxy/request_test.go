package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPromptEstimateReadsEveryShapeOfText(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		body string
		want int64
	}{
		"chat string":     {`{"model":"m","messages":[{"role":"user","content":"12345678"}]}`, 2},
		"chat parts":      {`{"model":"m","messages":[{"content":[{"type":"text","text":"1234"},{"type":"image_url","image_url":{"url":"x"}}]},{"content":"12345"}]}`, 3},
		"prompt string":   {`{"model":"m","prompt":"123"}`, 1},
		"prompt array":    {`{"model":"m","prompt":["1234","1234"]}`, 2},
		"token ids":       {`{"model":"m","prompt":[1,2,3,4,5]}`, 5},
		"embedding batch": {`{"model":"m","input":[[1,2],[3]]}`, 3},
		"unicode":         {`{"model":"m","input":"ééééé"}`, 2},
		"nothing":         {`{"model":"m"}`, 1},
	} {
		in, err := parseInference([]byte(tc.body), false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := in.promptTokens(); got != tc.want {
			t.Errorf("%s: %d tokens, want %d", name, got, tc.want)
		}
	}
}

func TestCompletionEstimatePrefersTheRequestsLimit(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]int64{
		`{"model":"m"}`:                 300,
		`{"model":"m","max_tokens":20}`: 20,
		`{"model":"m","max_tokens":20,"max_completion_tokens":7}`: 7,
	} {
		in, _ := parseInference([]byte(body), false)
		if got := in.completionTokens(300); got != want {
			t.Errorf("%s: %d, want %d", body, got, want)
		}
	}
}

func TestUsageIsFoundOnlyWhereItIsAnObject(t *testing.T) {
	t.Parallel()
	for data, want := range map[string]bool{
		`{"choices":[],"usage":{"prompt_tokens":1}}`:       true,
		`{"choices":[],"usage" : {"prompt_tokens":1}}`:     true,
		`{"choices":[{"delta":{}}],"usage":null}`:          false,
		`{"choices":[{"delta":{"content":"usage"}}]}`:      false,
		`{"x":{"usage":null},"usage":{"prompt_tokens":1}}`: true,
	} {
		if (usageIn([]byte(data)) != nil) != want {
			t.Errorf("usageIn(%s) found: %v", data, !want)
		}
	}
	if got := eventData([]byte("event: x\r\ndata: a\ndata:b\n: comment\n")); string(got) != "a\nb" {
		t.Fatalf("eventData = %q", got)
	}
}

// FuzzInference feeds arbitrary bodies to the gateway's request decoder:
// it must never panic, must answer a 400 or accept, and what it accepts
// must estimate to at least one token and rewrite to valid JSON that asks
// for usage when streamed.
func FuzzInference(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`,
		`{"model":"m","stream":true,"stream_options":null,"prompt":[1,2,[3]]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false}}`,
		`{"model":"m","input":[{"text":"x"}],"messages":[{"content":[{"text":7}]}]}`,
		`{"model":"","max_tokens":-1}`, `{"model":"a","MODEL":"b"}`, `[]`, `nul`, `{"model":"m","max_tokens":1e99}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, apiErr := parseInference(body, false)
		if apiErr != nil {
			if apiErr.status != 400 {
				t.Fatalf("refusal with status %d", apiErr.status)
			}
			return
		}
		if in.promptTokens() < 1 || in.completionTokens(1) < 0 {
			t.Fatalf("estimate out of range for %q", body)
		}
		out, err := upstreamBody(body, in)
		if err != nil {
			return // not an object at the top level: refused with 400 by the gateway
		}
		if !json.Valid(out) {
			t.Fatalf("rewritten body is not JSON: %q", out)
		}
		if in.Stream && !bytes.Contains(out, []byte(`"include_usage":true`)) && !strings.Contains(string(out), `"include_usage": true`) {
			t.Fatalf("streamed body does not ask for usage: %q", out)
		}
	})
}

// A value of the wrong type is named in words, never as a Go type, and
// numbers too large to estimate with are refused.
func TestParseInferenceRefusalsSpeakJSON(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"model":"m","max_tokens":"many"}`:                "want an integer, got string",
		`{"model":"m","stream":"yes"}`:                     "want true or false, got string",
		`{"model":"m","max_tokens":9223372036854775807}`:   "between 0 and",
		`{"model":"m","max_completion_tokens":4294967296}`: "between 0 and",
	} {
		_, apiErr := parseInference([]byte(body), false)
		if apiErr == nil || apiErr.status != 400 || !strings.Contains(apiErr.Message, want) || strings.Contains(apiErr.Message, "int64") {
			t.Errorf("%s: %+v, want a 400 saying %q", body, apiErr, want)
		}
	}
}
