package api

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// A client that sends its headers and then trickles its body is cut off
// by the read timeout, not held for as long as it likes.
func TestASlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 1, func(cfg *ServerConfig) { cfg.ReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", c.running()[0].APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("POST /v1/check HTTP/1.1\r\nHost: tollgate\r\nContent-Length: 1000\r\n\r\n{\"tenant\":")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // the test's own bound
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("a trickled body got %d, want 408 or the connection closed", resp.StatusCode)
		}
	}
	if took > 5*time.Second {
		t.Fatalf("the server held a trickled body for %s; its read timeout is 300ms", took)
	}
}

// The public gRPC port serves the public services only: a forged peer
// write or departure sent there finds no service. The peer port has them.
func TestThePublicGRPCPortServesNoPeerService(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 1, nil)
	s := c.running()[0]
	call := func(addr string) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = peerv1.NewPeerClient(conn).Depart(t.Context(), &peerv1.DepartRequest{})
		return err
	}
	if err := call(s.GRPCAddr()); status.Code(err) != codes.Unimplemented {
		t.Fatalf("peer call on the public port: %v, want Unimplemented", err)
	}
	if err := call(s.PeerAddr()); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("peer call on the peer port: %v, want its own refusal (InvalidArgument: from is required)", err)
	}
}
