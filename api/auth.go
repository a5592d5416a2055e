package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/quota/quotapb"
)

// Auth says who may use the admin API and who the check API.
type Auth struct {
	Admin TokenAuth
	// CheckToken, if set, is required of callers of POST /v1/check,
	// /v1/release, tollgate.v1.RateLimiter and Envoy's
	// envoy.service.ratelimit.v3.RateLimitService, who spend any tenant's
	// limits. Empty: anyone who reaches the port may check.
	CheckToken string
}

// check is who may use the check API.
func (a Auth) check() TokenAuth { return TokenAuth{Token: a.CheckToken, Open: a.CheckToken == ""} }

// TokenAuth says who may use an API: holders of Token, or anyone if Open.
// With neither, nobody (the admin API is off).
type TokenAuth struct {
	Token string
	Open  bool
}

// bearer takes the credentials of an "Authorization: Bearer <token>"
// value; the scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// allows checks an "Authorization: Bearer" value in constant time.
func (a TokenAuth) allows(header string) bool {
	if a.Open {
		return true
	}
	given, ok := bearer(header)
	if a.Token == "" || !ok {
		return false
	}
	// Hashing first makes the comparison independent of the lengths too.
	x, y := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(a.Token))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// checkAllowed answers 401 unless the request carries the check token.
func (h *httpAPI) checkAllowed(w http.ResponseWriter, r *http.Request) bool {
	if h.auth.check().allows(r.Header.Get("Authorization")) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-check"`)
	writeJSON(w, http.StatusUnauthorized, errorJSON{errorBody{Code: "unauthorized", Message: "missing or wrong check token"}})
	return false
}

// AuthInterceptor refuses Admin calls without the admin token, and
// RateLimiter calls without the check token, in the "authorization"
// metadata; other services (the peer plane's) pass.
func AuthInterceptor(auth Auth) grpc.UnaryServerInterceptor {
	adminPrefix := "/" + configv1.Admin_ServiceDesc.ServiceName + "/"
	checkPrefix := "/" + tollgatev1.RateLimiter_ServiceDesc.ServiceName + "/"
	rlsPrefix := "/" + rlsv3.RateLimitService_ServiceDesc.ServiceName + "/"
	given := func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch {
		case strings.HasPrefix(info.FullMethod, checkPrefix), strings.HasPrefix(info.FullMethod, rlsPrefix):
			if !auth.check().allows(given(ctx)) {
				return nil, status.Error(codes.Unauthenticated, "missing or wrong check token")
			}
			return handler(ctx, req)
		case !strings.HasPrefix(info.FullMethod, adminPrefix):
			return handler(ctx, req)
		case !auth.Admin.Open && auth.Admin.Token == "":
			return nil, status.Error(codes.PermissionDenied, "the admin API is off on this node: start it with --admin-token")
		case !auth.Admin.allows(given(ctx)):
			return nil, status.Error(codes.Unauthenticated, "missing or wrong admin token")
		}
		resp, err := handler(ctx, req)
		if err != nil {
			err = quotapb.Status(err)
		}
		return resp, err
	}
}
