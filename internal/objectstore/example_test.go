package objectstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kilnhq/kiln/internal/objectstore"
)

// A bucket is opened from one URL: file:///path for a folder, as here, or
// s3://bucket?endpoint=host:port for any S3 server. Every implementation
// behaves the same (objectstoretest runs one suite over all of them).
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "objectstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	b, err := objectstore.Open(ctx, "file://"+dir)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	// Put streams; -1 says the size is not known in advance.
	for i, part := range []string{"first line\n", "second line\n"} {
		if _, err := b.Put(ctx, fmt.Sprintf("parts/%d", i), strings.NewReader(part), -1); err != nil {
			panic(err)
		}
	}
	// Compose concatenates objects server-side where the store can.
	info, err := b.Compose(ctx, "whole.txt", []string{"parts/0", "parts/1"})
	if err != nil {
		panic(err)
	}
	fmt.Println("whole.txt:", info.Size, "bytes")

	rc, err := b.Get(ctx, "whole.txt")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Print(string(body))

	_ = b.List(ctx, "parts/", func(i objectstore.Info) error {
		fmt.Println("listed", i.Key)
		return nil
	})

	// A missing key wraps ErrNotExist.
	_, err = b.Stat(ctx, "missing")
	fmt.Println("not exist:", errors.Is(err, objectstore.ErrNotExist))
	// Output:
	// whole.txt: 23 bytes
	// first line
	// second line
	// listed parts/0
	// listed parts/1
	// not exist: true
}
