package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/cluster/clustertest"
	"github.com/tollgate/tollgate/cluster/peer"
	configv1 "github.com/tollgate/tollgate/proto/tollgate/config/v1"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// tlsCluster starts n nodes whose peer plane and Raft run over mutual TLS,
// each with a certificate that names it, unless certFor says another.
func tlsCluster(t *testing.T, n int, dir string, certFor func(node string) string) *testCluster {
	t.Helper()
	return startTestCluster(t, n, func(cfg *ServerConfig) {
		cfg.Node.RaftListen, cfg.Node.InMemory = "127.0.0.1:0", true
		name := cfg.Node.NodeName
		if certFor != nil {
			name = certFor(name)
		}
		tls, err := peer.LoadTLS(peer.Files(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Node.TLS = tls
	})
}

func TestThePeerPlaneWantsANodesCertificate(t *testing.T) {
	t.Parallel()
	dir, other := t.TempDir(), t.TempDir()
	if err := peer.WriteCerts(dir, []string{"node-1", "node-2", "node-3"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := peer.WriteCerts(other, []string{"node-1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := tlsCluster(t, 2, dir, nil)
	// The cluster works: checks forwarded to their owners over TLS.
	req := dayLimit("tls-tenant", 10)
	if got := c.admitted(20, req); got != 10 {
		t.Fatalf("admitted %d of 20 against a limit of 10, whichever node was asked", got)
	}

	target := c.running()[0].PeerAddr()
	pull := func(creds credentials.TransportCredentials, from string) error {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = peerv1.NewPeerClient(conn).Pull(t.Context(), &peerv1.PullRequest{From: from, Tenants: []string{"tls-tenant"}})
		return err
	}
	withCert := func(dir, node string) credentials.TransportCredentials {
		tl, err := peer.LoadTLS(peer.Files(dir, node))
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(tl.Client("node-1"))
	}
	clusterCA, _ := peer.LoadTLS(peer.Files(dir, "node-3"))
	noClientCert := clusterCA.Client("node-1")
	noClientCert.Certificates = nil
	// Trusts the cluster's server, shows another CA's certificate: only
	// the server's check of the client refuses it.
	otherCA, _ := peer.LoadTLS(peer.Files(other, "node-1"))
	foreign := clusterCA.Client("node-1")
	foreign.Certificates = otherCA.Client("node-1").Certificates
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                   insecure.NewCredentials(),
		"TLS without a certificate":   credentials.NewTLS(noClientCert),
		"a certificate of another CA": credentials.NewTLS(foreign),
	} {
		if err := pull(creds, "node-2"); status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want the connection refused", name, err)
		}
	}
	// A node of the cluster speaks for itself only.
	if err := pull(withCert(dir, "node-3"), "node-2"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("node-3's certificate claiming to be node-2: %v, want PermissionDenied", err)
	}
	if err := pull(withCert(dir, "node-3"), ""); status.Code(err) != codes.PermissionDenied {
		t.Errorf("node-3's certificate naming no sender: %v, want PermissionDenied", err)
	}
	// On a stream every message is checked, not just the first.
	stream := func(from ...string) error {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(withCert(dir, "node-2")))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		s, err := peerv1.NewPeerClient(conn).CheckStream(t.Context())
		if err != nil {
			return err
		}
		for _, f := range from {
			if err := s.Send(&peerv1.CheckBatchRequest{From: f}); err != nil {
				break // the server has ended the stream; Recv says why
			}
		}
		_ = s.CloseSend()
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	if err := stream("node-2", "node-1"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("node-2's stream speaking for node-1 in its second message: %v, want PermissionDenied", err)
	}
	if err := stream("node-2", "node-2"); err != nil {
		t.Errorf("node-2's stream as itself: %v", err)
	}
	if err := pull(withCert(dir, "node-3"), "node-3"); err != nil {
		t.Errorf("node-3 as itself: %v", err)
	}
}

// A node whose certificate names another node is not trusted by the
// others: its share of the tenants is decided by the failure policy.
func TestANodeWithAnotherNodesCertificateIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := peer.WriteCerts(dir, []string{"node-1", "node-2", "node-9"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := tlsCluster(t, 2, dir, func(node string) string {
		if node == "node-2" {
			return "node-9"
		}
		return node
	})
	n1 := c.running()[0]
	for i := range 50 {
		tenant := fmt.Sprintf("t-%d", i)
		if n1.Node.Owner(tenant) != "node-2" {
			continue
		}
		req := dayLimit(tenant, 10)
		resp, err := n1.Node.Check(t.Context(), &req)
		if err != nil || !resp.Degraded {
			t.Fatalf("a tenant of the node with node-9's certificate: %+v %v, want a degraded answer", resp, err)
		}
		return
	}
	t.Fatal("no tenant of node-2 among 50")
}

// A certificate the cluster's CA signed for a node that is no member (it
// left, or never joined) writes no command, ends no lease and reaches no
// Raft member.
func TestACertificateOfNoMemberIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := peer.WriteCerts(dir, []string{"node-1", "node-2", "node-3"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := tlsCluster(t, 2, dir, nil)
	var leader *Server
	clustertest.Eventually(t, 10*time.Second, "a raft leader", func() bool {
		for _, s := range c.running() {
			if st := s.Node.Admin().Raft(); st.Leader == s.Node.Name() && len(st.Voters) == 2 {
				leader = s
				return true
			}
		}
		return false
	})
	rogue, err := peer.LoadTLS(peer.Files(dir, "node-3"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(leader.PeerAddr(), grpc.WithTransportCredentials(credentials.NewTLS(rogue.Client(leader.Node.Name()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := peerv1.NewPeerClient(conn)
	cmd, err := proto.Marshal(&configv1.Command{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Apply(t.Context(), &peerv1.ApplyRequest{Command: cmd}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Apply with the certificate of no member: %v, want PermissionDenied", err)
	}
	release := &tollgatev1.ReleaseRequest{Tenant: "t", LeaseId: 1, Limit: &tollgatev1.Limit{Name: "c", Limit: 1,
		Algorithm: tollgatev1.Algorithm_ALGORITHM_CONCURRENCY, Period: durationpb.New(time.Second)}}
	if _, err := client.Release(t.Context(), release); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Release with the certificate of no member: %v, want PermissionDenied", err)
	}

	// Raft: the handshake completes on the client's side first (TLS 1.3),
	// and the server's refusal ends the connection at the first read.
	var raftAddr string
	for _, m := range leader.Node.Members() {
		if m.Name == leader.Node.Name() {
			raftAddr = m.RaftAddr
		}
	}
	raftConn, err := tls.Dial("tcp", raftAddr, rogue.ClientAnyNode())
	if err == nil {
		defer raftConn.Close()
		_ = raftConn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = raftConn.Read(make([]byte, 1))
	}
	var netErr net.Error
	if err == nil || (errors.As(err, &netErr) && netErr.Timeout()) {
		t.Errorf("a Raft connection with the certificate of no member: %v, want it refused", err)
	}
}
