// Command lambdazip builds cmd/kiln-lambda for AWS Lambda's provided.al2023
// runtime: for each architecture named (amd64, arm64) a static Linux binary
// named bootstrap (tag lambda.norpc: the runtime API only), zipped alone as
// DIR/kiln-lambda-ARCH.zip, ready for `aws lambda create-function --runtime
// provided.al2023 --architectures x86_64|arm64 --handler bootstrap
// --zip-file fileb://...`. `make lambda` runs it for both:
//
//	go run ./internal/lambdazip -o bin amd64 arm64
//
// It prints each zip's path.
package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// pkg is what the zips hold.
const pkg = "github.com/kilnhq/kiln/cmd/kiln-lambda"

// lambdaArch maps a GOARCH to Lambda's name of the architecture.
var lambdaArch = map[string]string{"amd64": "x86_64", "arm64": "arm64"}

func main() {
	out := flag.String("o", "bin", "folder of the zips")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: lambdazip [-o DIR] ARCH...   (ARCH: amd64, arm64)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, arch := range flag.Args() {
		path, err := build(*out, arch)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lambdazip:", err)
			os.Exit(1)
		}
		fmt.Println(path)
	}
}

// build builds the bootstrap for arch under dir/arch and zips it as
// dir/kiln-lambda-ARCH.zip.
func build(dir, arch string) (string, error) {
	if _, ok := lambdaArch[arch]; !ok {
		return "", fmt.Errorf("architecture %q: Lambda runs amd64 (x86_64) and arm64", arch)
	}
	bin := filepath.Join(dir, "lambda-"+arch, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for linux/%s: %w", pkg, arch, err)
	}
	zipPath := filepath.Join(dir, "kiln-lambda-"+arch+".zip")
	if err := writeZip(zipPath, bin); err != nil {
		return "", err
	}
	return zipPath, nil
}

// modified is the zips' timestamp, so that a build of the same source
// gives the same zip.
var modified = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// writeZip writes a zip at path holding the file bin as bootstrap, an
// executable, which Lambda's custom runtimes run.
func writeZip(path, bin string) (err error) {
	src, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lambdazip-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: modified}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
