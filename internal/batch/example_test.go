package batch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// The lifecycle on kiln's embedded default, SQLite and a folder: a file
// becomes a batch, which validation starts; its input cannot be deleted
// while it runs; a cancel stops it, and finalizing ends it with an error
// line for every request that never ran. In kiln the jobs of
// jobs.Register call Validate and Finalize; here they are called by hand.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "batch-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, "sqlite://"+dir+"/kiln.db", log)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	bucket, err := objectstore.Open(ctx, "file://"+dir+"/objects")
	if err != nil {
		panic(err)
	}
	defer bucket.Close()
	// No agent runs here to declare its models: the configuration names
	// the one the batch uses.
	batches := batch.New(st, bucket, batch.Limits{Models: []string{"sim-model"}}, log)

	input := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}}
{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"bye"}]}}
`
	f, err := batches.CreateFile(ctx, batch.PurposeBatch, "requests.jsonl", strings.NewReader(input))
	if err != nil {
		panic(err)
	}
	b, err := batches.Create(ctx, batch.CreateParams{InputFileID: f.ID, Endpoint: "/v1/chat/completions"})
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", b.Status)

	if err := batches.Validate(ctx, b.ID); err != nil {
		panic(err)
	}
	b, _ = batches.Get(ctx, b.ID)
	fmt.Println("validated:", b.Status, b.Total, "requests of", b.Model)

	_, err = batches.DeleteFile(ctx, f.ID)
	if e, ok := apierror.As(err); ok {
		fmt.Println("delete input:", e.Status, e.Code)
	}

	b, _ = batches.Cancel(ctx, b.ID)
	fmt.Println("cancel:", b.Status)
	if err := batches.Finalize(ctx, b.ID); err != nil {
		panic(err)
	}
	b, _ = batches.Get(ctx, b.ID)
	fmt.Println("finalized:", b.Status, b.Completed, "completed,", b.Failed, "failed")

	_, err = batches.Cancel(ctx, b.ID)
	if e, ok := apierror.As(err); ok {
		fmt.Println("cancel again:", e.Status, e.Code)
	}
	// Output:
	// created: validating
	// validated: in_progress 2 requests of sim-model
	// delete input: 409 file_in_use
	// cancel: cancelling
	// finalized: cancelled 0 completed, 2 failed
	// cancel again: 409 batch_not_cancellable
}
