package peer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TLS is a node's identity on the peer plane and Raft: its certificate
// (whose DNS names hold the node's name) and the CA that signed every
// node's. Both ends of every connection show one (mutual TLS).
type TLS struct {
	cert tls.Certificate
	cas  *x509.CertPool
}

// LoadTLS reads a node's certificate, its key and the cluster's CA, PEM.
func LoadTLS(certFile, keyFile, caFile string) (*TLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls-cert, tls-key: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls-ca: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls-ca: %s holds no PEM certificate", caFile)
	}
	return &TLS{cert: cert, cas: cas}, nil
}

// Names are the node names this node's certificate bears.
func (t *TLS) Names() []string {
	if len(t.cert.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(t.cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf.DNSNames
}

// Server is the configuration of a server that only nodes may call.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientCAs:    t.cas,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// Client is the configuration of a call to the node named name: its
// certificate must be the cluster CA's and bear that name.
func (t *TLS) Client(name string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		RootCAs:      t.cas,
		ServerName:   name,
	}
}

// ClientAnyNode is the configuration of a call to a node known only by its
// address (Raft dials addresses): any certificate of the cluster CA will do.
func (t *TLS) ClientAnyNode() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		// The chain is verified below, against the CA and without a name.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the node showed no certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: t.cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// ServerOptions are the peer server's transport and identity checks.
func (t *TLS) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(t.Server())),
		grpc.UnaryInterceptor(checkUnaryIdentity),
		grpc.StreamInterceptor(checkStreamIdentity),
	}
}

// Identity returns the node names a peer call's certificate bears; ok is
// false for a call without one (a cluster run without TLS).
func Identity(ctx context.Context) (names []string, ok bool) {
	p, found := grpcpeer.FromContext(ctx)
	if !found {
		return nil, false
	}
	info, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS || len(info.State.PeerCertificates) == 0 {
		return nil, false
	}
	return info.State.PeerCertificates[0].DNSNames, true
}

// fromMessage is a peer request that names the node it comes from.
type fromMessage interface{ GetFrom() string }

// checkFrom refuses a request that names a node other than the one whose
// certificate made the call: a node speaks for itself only.
func checkFrom(ctx context.Context, req any) error {
	m, names := req.(fromMessage)
	if !names {
		return nil
	}
	// Exactly: node names are case-sensitive (the ring is keyed by them).
	if ids, _ := Identity(ctx); !slices.Contains(ids, m.GetFrom()) {
		return status.Errorf(codes.PermissionDenied, "from: %q is not the node this certificate names", m.GetFrom())
	}
	return nil
}

func checkUnaryIdentity(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := checkFrom(ctx, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func checkStreamIdentity(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &identityStream{ss})
}

// identityStream checks every message received on a stream.
type identityStream struct{ grpc.ServerStream }

func (s *identityStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkFrom(s.Context(), m)
}
