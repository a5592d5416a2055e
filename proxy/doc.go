// Package proxy is Tollgate's OpenAI-compatible gateway. For each request
// it finds the tenant by API key in the local configuration, checks the
// model, takes one atomic reservation on the tenant's owner (a request, an
// estimate of the tokens, a concurrency lease, the monthly budget), passes
// the request to the upstream that serves the model, streams the answer
// back as it arrives, and settles the reservation exactly once with the
// usage the upstream reports. It owns authentication, token estimates,
// upstream routing, SSE usage parsing, the rate-limit headers, cost and the
// audit log.
//
// It does not own limits, counters or configuration: it reaches them
// through the Config and Reserver interfaces it declares, which the cluster
// package's node satisfies (cmd/tollgate wires the two).
package proxy
