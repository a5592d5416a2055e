// Package mockupstream is a fake OpenAI-compatible LLM API for the gateway's
// tests, benchmarks and local runs: chat completions and text completions
// (whole or streamed as server-sent events), embeddings and the model list,
// in the real API's JSON shapes, including its error shape.
//
// Everything it answers is predictable, so a test can compute what the
// gateway should have metered: prompt tokens are ceil(characters / 4),
// completion tokens are a fixed count that a request's max_tokens can only
// lower, embeddings are hashed from the input, and injected failures come
// from a PRNG seeded by Options.Seed. Latency, chunk delay and failure rate
// are the knobs for exercising the gateway's timeouts, streaming and
// settlement of failed requests. Reported returns the usage the server has
// put in its answers, the upstream's side of "the sum charged equals the sum
// the upstream reported".
//
// It does not tokenize, generate text or decide which models a caller may
// use (every model is answered; allowing them is the gateway's job), and it
// keeps no state beyond those usage totals and the failure PRNG.
package mockupstream
