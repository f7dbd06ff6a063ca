package faulttest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/openaispec"
	"github.com/kilnhq/kiln/internal/store"
)

// checkOpts shape checkBatch.
type checkOpts struct {
	// chat says every output line must hold a chat completion: kiln must
	// not pass off a broken answer as a success.
	chat bool
}

// batchFiles is what an ended batch's files held.
type batchFiles struct {
	outputs, errors int
	codes           map[string]int // error lines by code (or HTTP status)
}

// checkBatch checks the invariant of an ended batch whose input had
// requests req-0 … req-(requests-1), and returns what is wrong:
// output lines + error lines == request_counts.total, the counts match the
// files, every line is an OpenAI BatchRequestOutput, each custom_id appears
// exactly once across both files, batch_cancelled and batch_expired lines
// only in batches that were, and a failed batch (validation) has no files.
func checkBatch(ctx context.Context, c openai.Client, b openai.Batch, requests int, o checkOpts) []string {
	_, problems := checkBatchFiles(ctx, c, b, requests, o)
	return problems
}

func checkBatchFiles(ctx context.Context, c openai.Client, b openai.Batch, requests int, o checkOpts) (batchFiles, []string) {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("batch %s (%s): ", b.ID, b.Status)+fmt.Sprintf(format, args...))
	}
	f := batchFiles{codes: map[string]int{}}
	if !terminal(b.Status) {
		bad("not ended")
		return f, problems
	}
	counts := b.RequestCounts
	if b.Status == openai.BatchStatusFailed || (counts.Total == 0 && b.InProgressAt == 0) {
		// Failed validation, or stopped before it: no request ran.
		if b.OutputFileID != "" || b.ErrorFileID != "" || counts.Total != 0 {
			bad("ended before running, yet has files %q %q and %d requests", b.OutputFileID, b.ErrorFileID, counts.Total)
		}
		return f, problems
	}
	if counts.Total != int64(requests) {
		bad("request_counts.total %d, the input has %d", counts.Total, requests)
	}
	seen := map[string]int{}
	read := func(fileID string, output bool) int {
		if fileID == "" {
			return 0
		}
		n := 0
		err := eachLine(ctx, c, fileID, func(line []byte) {
			n++
			if err := openaispec.Validate("BatchRequestOutput", line); err != nil {
				bad("file %s line %d is no BatchRequestOutput: %v: %s", fileID, n, err, clip(line))
			}
			var l struct {
				CustomID string `json:"custom_id"`
				Response *struct {
					StatusCode int             `json:"status_code"`
					Body       json.RawMessage `json:"body"`
				} `json:"response"`
				Error *struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(line, &l); err != nil {
				bad("file %s line %d: %v", fileID, n, err)
				return
			}
			seen[l.CustomID]++
			ok := l.Error == nil && l.Response != nil && l.Response.StatusCode >= 200 && l.Response.StatusCode < 300
			if ok != output {
				bad("file %s line %d (%s) is in the wrong file: %s", fileID, n, l.CustomID, clip(line))
				return
			}
			if !output {
				code := ""
				if l.Error != nil {
					code = l.Error.Code
				} else if l.Response != nil {
					code = fmt.Sprint(l.Response.StatusCode)
				}
				f.codes[code]++
				return
			}
			if o.chat && !isChatCompletion(l.Response.Body) {
				bad("output %s is not a chat completion: %s", l.CustomID, clip(l.Response.Body))
			}
		})
		if err != nil {
			bad("read file %s: %v", fileID, err)
		}
		return n
	}
	f.outputs = read(b.OutputFileID, true)
	f.errors = read(b.ErrorFileID, false)
	if int64(f.outputs) != counts.Completed || int64(f.errors) != counts.Failed {
		bad("request_counts say %d completed and %d failed; the files hold %d and %d lines", counts.Completed, counts.Failed, f.outputs, f.errors)
	}
	if int64(f.outputs+f.errors) != counts.Total {
		bad("%d output lines + %d error lines != total %d", f.outputs, f.errors, counts.Total)
	}
	for i := range requests {
		id := fmt.Sprintf("req-%d", i)
		if seen[id] != 1 {
			bad("%s appears %d times", id, seen[id])
		}
		delete(seen, id)
	}
	for id, n := range seen {
		bad("%s, no request of the input, appears %d times", id, n)
	}
	if f.codes["batch_cancelled"] > 0 && b.Status != openai.BatchStatusCancelled {
		bad("%d batch_cancelled lines", f.codes["batch_cancelled"])
	}
	if f.codes["batch_expired"] > 0 && b.Status != openai.BatchStatusExpired {
		bad("%d batch_expired lines", f.codes["batch_expired"])
	}
	return f, problems
}

// isChatCompletion says whether body is a chat completion with a message.
func isChatCompletion(body []byte) bool {
	var cc struct {
		Object  string `json:"object"`
		Choices []struct {
			Message *struct {
				Role string `json:"role"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(body, &cc) != nil || cc.Object != "chat.completion" || len(cc.Choices) == 0 {
		return false
	}
	return cc.Choices[0].Message != nil && cc.Choices[0].Message.Role == "assistant"
}

// eachLine downloads a file and calls fn with each line.
func eachLine(ctx context.Context, c openai.Client, fileID string, fn func([]byte)) error {
	resp, err := c.Files.Content(ctx, fileID)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	return sc.Err()
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// checkObjects compares the bucket with the store's rows and returns what
// disagrees: an object under files/ without its file, under batches/ of a
// batch that has ended (or none), under uploads/ of an upload that has
// ended (or none), or anywhere else; a file without its object.
func checkObjects(ctx context.Context, st *store.Store, bucket objectstore.Bucket) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	err := bucket.List(ctx, "", func(info objectstore.Info) error {
		key := info.Key
		top, rest, _ := strings.Cut(key, "/")
		id, _, _ := strings.Cut(rest, "/")
		switch top {
		case "files":
			f, err := st.FileGet(ctx, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				bad("object %s (%d bytes, written %s) has no file", key, info.Size, info.ModTime.Format(time.TimeOnly))
			case err != nil:
				return err
			case f.ObjectKey != key:
				bad("object %s: its file %s has object %s", key, id, f.ObjectKey)
			}
		case "batches":
			b, err := st.BatchGet(ctx, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				bad("object %s belongs to no batch", key)
			case err != nil:
				return err
			case b.Terminal():
				bad("object %s remains of batch %s, which is %s", key, id, b.Status)
			}
		case "uploads":
			u, err := st.UploadGet(ctx, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				bad("object %s belongs to no upload", key)
			case err != nil:
				return err
			case u.Status != store.UploadPending && u.Status != store.UploadCompleting:
				bad("object %s remains of upload %s, which is %s", key, id, u.Status)
			}
		default:
			bad("object %s is none of kiln's", key)
		}
		return nil
	})
	if err != nil {
		return append(problems, fmt.Sprintf("list the bucket: %v", err))
	}
	after := ""
	for {
		files, more, err := st.FileList(ctx, store.FileListParams{After: after, Limit: 100, Asc: true})
		if err != nil {
			return append(problems, fmt.Sprintf("list files: %v", err))
		}
		for _, f := range files {
			after = f.ID
			if f.ObjectKey != batch.FileKey(f.ID) {
				bad("file %s has object key %s", f.ID, f.ObjectKey)
			}
			if _, err := bucket.Stat(ctx, f.ObjectKey); err != nil {
				bad("file %s (%s) has no object: %v", f.ID, f.Purpose, err)
			}
		}
		if !more {
			break
		}
	}
	return problems
}

// waitObjects waits until the bucket and the rows agree, as kiln removes
// what an ended batch or upload left just after the change that ended it,
// and returns what still disagrees after within.
func waitObjects(ctx context.Context, st *store.Store, bucket objectstore.Bucket, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		problems := checkObjects(ctx, st, bucket)
		if len(problems) == 0 || time.Now().After(deadline) {
			return problems
		}
		<-time.After(200 * time.Millisecond)
	}
}

// requireObjects checks that env's bucket (bucket, without faults) and its
// rows agree (see settleObjects), and returns how many objects lacked
// their row before the objects sweep.
func requireObjects(t *testing.T, env *kilntest.Env, bucket objectstore.Bucket) int {
	t.Helper()
	orphans, problems := settleObjects(t, env.App.Store, bucket)
	require.Empty(t, problems)
	return orphans
}

// settleObjects waits for kiln's cleanup, then runs the objects sweep as
// it would run an hour later, and returns what disagrees then between the
// bucket and the rows, and how many objects lacked their row before the
// sweep: what a crash or a storage error left between writing an object
// and its row, or between ending a batch or an upload and removing its
// objects, which kiln leaves to the sweep.
func settleObjects(t *testing.T, st *store.Store, bucket objectstore.Bucket) (int, []string) {
	t.Helper()
	ctx := context.Background()
	orphans := waitObjects(ctx, st, bucket, 10*time.Second)
	if len(orphans) == 0 {
		return 0, nil
	}
	counts, err := batch.New(st, bucket, batch.Limits{}, slog.New(slog.DiscardHandler)).SweepObjects(ctx, 0)
	if err != nil {
		return len(orphans), []string{fmt.Sprintf("sweep: %v", err)}
	}
	t.Logf("objects without their row before the sweep, which removed %v:\n\t%s", counts, strings.Join(orphans, "\n\t"))
	return len(orphans), checkObjects(ctx, st, bucket)
}

// customID is the custom_id of a result line.
func customID(t *testing.T, line []byte) string {
	t.Helper()
	var l struct {
		CustomID string `json:"custom_id"`
	}
	require.NoError(t, json.Unmarshal(line, &l))
	return l.CustomID
}

// faultSeed is the seed of a fault test's schedule: KILN_FAULT_SEED, or
// the time. It is logged, to replay.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano()) % 1_000_000_000
	if s := os.Getenv("KILN_FAULT_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (KILN_FAULT_SEED=%d replays it)", seed, seed)
	return seed
}
