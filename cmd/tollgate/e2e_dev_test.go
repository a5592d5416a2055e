package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `tollgate dev` starts the cluster, the mock upstream and the demo
// tenants, and the chat completion it prints answers.
func TestDevAnswersTheChatCompletionItPrints(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	cmd := exec.Command(binary, "dev", "--nodes", "3", "--api-port", "0", "--grpc-port", "0", "--peer-port", "0", "--gossip-port", "0",
		"--raft-port", "0", "--http-port", "0", "--mock-port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// The gateway of node-1 and the bronze tenant's key, from the banner.
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var gateway, key string
	deadline := time.After(30 * time.Second)
	for gateway == "" || key == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("tollgate dev ended before printing its banner")
			}
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "node-1":
				gateway = f[1]
			case len(f) == 4 && f[0] == "demo-bronze":
				key = f[3]
			}
		case <-deadline:
			t.Fatal("no banner within 30s")
		}
	}
	req, _ := http.NewRequest("POST", "http://"+gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"mock-chat","messages":[{"role":"user","content":"Hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || answer.Usage.TotalTokens == 0 {
		t.Fatalf("chat completion: %d %v %+v", resp.StatusCode, err, answer)
	}
	// Ctrl-C stops it cleanly.
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tollgate dev did not stop within 30s of SIGINT")
	}
}
