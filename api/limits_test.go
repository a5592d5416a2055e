package api

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
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
