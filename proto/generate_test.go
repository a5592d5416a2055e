package proto

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedIsCurrent regenerates the Go from the .proto sources into a
// temporary directory and compares it with what is committed.
func TestGeneratedIsCurrent(t *testing.T) {
	t.Parallel()
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc is not installed; .ci/run installs protobuf-compiler")
		}
		t.Skip("protoc not installed (apt-get install protobuf-compiler)")
	}
	bin := t.TempDir()
	out := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building plugins: %v\n%s", err, b)
	}
	var sources []string
	_ = filepath.WalkDir("tollgate", func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".proto") {
			sources = append(sources, path)
		}
		return err
	})
	args := []string{"-I", ".",
		"--plugin=protoc-gen-go=" + filepath.Join(bin, "protoc-gen-go"), "--go_out=" + out, "--go_opt=paths=source_relative",
		"--plugin=protoc-gen-go-grpc=" + filepath.Join(bin, "protoc-gen-go-grpc"), "--go-grpc_out=" + out, "--go-grpc_opt=paths=source_relative",
	}
	if b, err := exec.Command(protoc, append(args, sources...)...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	var generated []string
	_ = filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".pb.go") {
			generated = append(generated, path)
		}
		return err
	})
	if len(generated) == 0 {
		t.Fatal("protoc generated nothing")
	}
	for _, g := range generated {
		rel, _ := filepath.Rel(out, g)
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(rel)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with its .proto: run make proto", rel)
		}
	}
}
