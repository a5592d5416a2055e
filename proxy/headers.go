package proxy

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/limiter"
	"github.com/tollgate/tollgate/quota"
)

// setRateLimitHeaders describes the tenant's request and token limits on
// an answer: the IETF httpapi fields (draft-ietf-httpapi-ratelimit-headers)
// with one policy for requests and one for tokens, and OpenAI's
// x-ratelimit-* headers. A plan without a limit adds none for it.
func setRateLimitHeaders(h http.Header, r *Reservation) {
	var policies, states []string
	for _, kind := range []struct{ limit, name string }{
		{quota.LimitRequestsPerMinute, "requests"},
		{quota.LimitTokensPerMinute, "tokens"},
	} {
		st, ok := r.limit(kind.limit)
		if !ok {
			continue
		}
		remaining := max(st.Remaining, 0)
		policies = append(policies, fmt.Sprintf("%q;q=%d;w=60", kind.name, st.Limit))
		states = append(states, fmt.Sprintf("%q;r=%d;t=%d", kind.name, remaining, ceilSeconds(st.ResetAfter)))
		h.Set("x-ratelimit-limit-"+kind.name, strconv.FormatInt(st.Limit, 10))
		h.Set("x-ratelimit-remaining-"+kind.name, strconv.FormatInt(remaining, 10))
		h.Set("x-ratelimit-reset-"+kind.name, resetString(st.ResetAfter))
	}
	if len(policies) > 0 {
		h.Set("RateLimit-Policy", strings.Join(policies, ", "))
		h.Set("RateLimit", strings.Join(states, ", "))
	}
}

func (r *Reservation) limit(name string) (quota.LimitStatus, bool) {
	for _, l := range r.Limits {
		if l.Name == name {
			return l, true
		}
	}
	return quota.LimitStatus{}, false
}

// ceilSeconds rounds up to whole seconds, as the header fields count.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(max(d, 0).Seconds()))
}

// resetString is a duration the way OpenAI's reset headers write it
// ("1s", "6m0s", "20ms").
func resetString(d time.Duration) string {
	d = max(d, 0)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// longWait writes a wait of days as days and hours ("24d3h"), shorter ones
// as resetString does.
func longWait(d time.Duration) string {
	if d < 24*time.Hour {
		return resetString(d)
	}
	hours := int64(d.Round(time.Hour) / time.Hour)
	return fmt.Sprintf("%dd%dh", hours/24, hours%24)
}

// denial turns a denied reservation into the 429 to send, naming the
// limit that denied and when to retry, with Retry-After set on h.
func denial(h http.Header, r *Reservation) *apiError {
	if r.Degraded && !slices.ContainsFunc(r.Limits, func(l quota.LimitStatus) bool { return l.Allowed }) {
		return errClosed(h)
	}
	// The budget first: no waiting within the month will help the
	// others.
	for _, name := range []string{quota.LimitTokensPerMonth, quota.LimitRequestsPerMinute, quota.LimitTokensPerMinute, quota.LimitConcurrentRequests} {
		st, ok := r.limit(name)
		if !ok || st.Allowed {
			continue
		}
		retry := st.RetryAfter
		switch {
		case name == quota.LimitTokensPerMonth && retry <= 0:
			retry = time.Until(limiter.NextMonth(time.Now()))
		case name == quota.LimitConcurrentRequests || retry <= 0:
			// A lease ends when a request does, which is not known ahead.
			retry = time.Second
		}
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(retry), 1), 10))
		wait := resetString(retry)
		switch name {
		case quota.LimitTokensPerMonth:
			// Nothing helps before the budget renews: SDKs that honour
			// x-should-retry give up rather than retry for a month.
			h.Set("x-should-retry", "false")
			renews := time.Now().Add(retry).UTC().Round(time.Minute)
			return newError(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
				fmt.Sprintf("You exceeded your monthly token budget of %d tokens; it renews at the start of the next UTC month, %s (in %s).",
					st.Limit, renews.Format("2006-01-02 15:04 UTC"), longWait(retry)))
		case quota.LimitRequestsPerMinute:
			return newError(http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
				fmt.Sprintf("Rate limit reached on requests per minute: limit %d. Please try again in %s.", st.Limit, wait))
		case quota.LimitTokensPerMinute:
			return newError(http.StatusTooManyRequests, "tokens", "rate_limit_exceeded",
				fmt.Sprintf("Rate limit reached on tokens per minute: limit %d, remaining %d. Please try again in %s.", st.Limit, max(st.Remaining, 0), wait))
		default:
			return newError(http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
				fmt.Sprintf("Too many concurrent requests: limit %d in flight. Please try again in %s.", st.Limit, wait))
		}
	}
	return errClosed(h)
}

// errClosed answers a denial by the closed failure policy: the owner was
// unreachable, so no limit was really checked.
func errClosed(h http.Header) *apiError {
	h.Set("Retry-After", "1")
	return newError(http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached: the tenant's limits cannot be checked right now. Please try again in 1s.")
}
