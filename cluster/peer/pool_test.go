package peer

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/cluster/gossip"
	peerv1 "github.com/tollgate/tollgate/proto/tollgate/peer/v1"
)

// The peer plane's fixed windows keep gRPC from pinging to measure the
// link: a run of small calls between a Pool and a server with
// ServerOptions carries no PING frame either way. Without the options
// both ends ping after (nearly) every burst of data.
func TestPeerPlaneSendsNoFlowControlPings(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counting := &pingCountingListener{Listener: ln}
	srv := grpc.NewServer(ServerOptions()...)
	peerv1.RegisterPeerServer(srv, echoBatches{})
	go func() { _ = srv.Serve(counting) }()
	defer srv.Stop()

	pool := NewPool(time.Second, nil)
	defer pool.Close()
	pool.Update([]gossip.Member{{Name: "owner", PeerAddr: ln.Addr().String()}})
	client, err := pool.Client("owner")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 200 {
		req := &peerv1.CheckBatchRequest{Checks: []*peerv1.ForwardedCheck{{Tenant: "t", Hits: int64(i)}}}
		if _, err := client.CheckBatch(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()
	srv.Stop()
	counting.readers.Wait()
	if got := counting.pings.Load(); got != 0 {
		t.Errorf("%d PING frames over 200 calls, want none", got)
	}
	if counting.frames.Load() < 400 {
		t.Fatalf("read only %d frames: the count is not seeing the connection", counting.frames.Load())
	}
}

// echoBatches answers each batch with one empty result a check.
type echoBatches struct{ peerv1.UnimplementedPeerServer }

func (echoBatches) CheckBatch(_ context.Context, req *peerv1.CheckBatchRequest) (*peerv1.CheckBatchResponse, error) {
	resp := &peerv1.CheckBatchResponse{}
	for range req.GetChecks() {
		resp.Results = append(resp.Results, &peerv1.CheckResult{Allowed: true})
	}
	return resp, nil
}

// pingCountingListener counts the HTTP/2 frames, and the PING frames among
// them, its connections carry in both directions.
type pingCountingListener struct {
	net.Listener
	frames, pings atomic.Int64
	readers       sync.WaitGroup
}

func (l *pingCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	in, inW := io.Pipe()
	out, outW := io.Pipe()
	l.readers.Go(func() { l.count(in, len(http2.ClientPreface)) })
	l.readers.Go(func() { l.count(out, 0) })
	return &tappedConn{Conn: c, in: inW, out: outW}, nil
}

// count reads frames from r, after skip bytes of preface, until it ends.
func (l *pingCountingListener) count(r *io.PipeReader, skip int) {
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, int64(skip)); err != nil {
		return
	}
	fr := http2.NewFramer(nil, r)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			_, _ = io.Copy(io.Discard, r)
			return
		}
		l.frames.Add(1)
		if _, ok := f.(*http2.PingFrame); ok {
			l.pings.Add(1)
		}
	}
}

// tappedConn copies what it reads to in and what it writes to out.
type tappedConn struct {
	net.Conn
	in, out *io.PipeWriter
}

func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	_, _ = c.in.Write(p[:n])
	return n, err
}

func (c *tappedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	_, _ = c.out.Write(p[:n])
	return n, err
}

func (c *tappedConn) Close() error {
	c.in.Close()
	c.out.Close()
	return c.Conn.Close()
}
