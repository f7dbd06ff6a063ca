package curation

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/kilnhq/kiln/internal/store"
	"github.com/stretchr/testify/require"
)

// TestParseOutput: an output is kept with what its line says of it, from
// a chat completion or a response; a usage of the wrong type leaves the
// tokens out, not the output; without a conquest type, any answered
// request is valid.
func TestParseOutput(t *testing.T) {
	t.Parallel()
	ms := int64(40)
	for _, c := range []struct {
		line, id string
		want     store.CurationOutput
	}{
		{`{"custom_id":"a","response":{"status_code":200,"latency_ms":40,"body":{"model":"m1","choices":[{"message":{"content":"hi"}}],` +
			`"usage":{"prompt_tokens":3,"completion_tokens":1}}}}`, "a",
			store.CurationOutput{BatchID: "batch_x", Model: "m1", Valid: true, Content: "hi", InputTokens: 3, OutputTokens: 1, LatencyMS: &ms}},
		{`{"custom_id":"b","response":{"status_code":200,"body":{"object":"response","output":[{"type":"message",` +
			`"content":[{"type":"output_text","text":"yes"}]}],"usage":{"input_tokens":"many","output_tokens":2}}}}`, "b",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Valid: true, Content: "yes", OutputTokens: 2}},
		{`{"custom_id":"c","response":{"status_code":200,"body":{"choices":[{"message":{"content":null}}]}}}`, "c",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Valid: true}},
		{`{"custom_id":"d","response":null,"error":{"code":"x","message":"y"}}`, "d",
			store.CurationOutput{BatchID: "batch_x", Model: "sim", Reason: "request_failed", Message: "the request got no successful answer"}},
		{`{"response":{"status_code":200}}`, "", store.CurationOutput{}},
		{`not json`, "", store.CurationOutput{}},
	} {
		o, id := parseOutput([]byte(c.line), "batch_x", "sim", nil)
		require.Equal(t, c.id, id, c.line)
		require.Equal(t, c.want, o, c.line)
	}
}

// TestImportWriterPhases: the writers store the chunks of a phase at once,
// and a chunk of the next phase only once every chunk before it is.
func TestImportWriterPhases(t *testing.T) {
	t.Parallel()
	started := make(chan string, 3)
	release := map[string]chan struct{}{"a1": make(chan struct{}), "a2": make(chan struct{}), "b": make(chan struct{})}
	close(release["b"])
	var mu sync.Mutex
	var ended []string
	w := &importWriter{write1: func(_ context.Context, items []store.ImportItem) (store.ImportResult, error) {
		key := items[0].Key
		started <- key
		<-release[key]
		mu.Lock()
		defer mu.Unlock()
		ended = append(ended, key)
		return store.ImportResult{Tasks: 1}, nil
	}}
	waiting := make(chan struct{}, 1)
	w.waitHook = func() { waiting <- struct{}{} }
	w.start(context.Background(), 2)
	chunk := func(key string) []store.ImportItem { return []store.ImportItem{{Key: key}} }

	require.NoError(t, w.write(chunk("a1")))
	require.NoError(t, w.write(chunk("a2")))
	require.ElementsMatch(t, []string{"a1", "a2"}, []string{<-started, <-started}, "both writers hold a chunk of the first phase")
	w.nextPhase()
	require.NoError(t, w.write(chunk("b")))
	close(release["a1"]) // its writer takes b, which must wait for a2
	select {
	case <-waiting:
	case key := <-started:
		t.Fatalf("%s was stored while a2 was not", key)
	}
	close(release["a2"])
	total, err := w.close(nil)
	require.NoError(t, err)
	require.Equal(t, store.ImportResult{Tasks: 3}, total)
	require.Equal(t, []string{"a1", "a2", "b"}, ended)
}

// TestImportWriterStopsAtAnError: a chunk that fails ends the import with
// its error, and the chunks after it are not stored.
func TestImportWriterStopsAtAnError(t *testing.T) {
	t.Parallel()
	failed := errors.New("the disk is full")
	var stored []string
	w := &importWriter{write1: func(_ context.Context, items []store.ImportItem) (store.ImportResult, error) {
		stored = append(stored, items[0].Key) // one writer: no lock needed
		if items[0].Key == "x" {
			return store.ImportResult{}, failed
		}
		return store.ImportResult{Tasks: 1}, nil
	}}
	w.start(context.Background(), 1)
	for _, key := range []string{"a", "x", "y", "z"} {
		if err := w.write([]store.ImportItem{{Key: key}}); err != nil {
			require.ErrorIs(t, err, failed)
			break
		}
	}
	total, err := w.close(nil)
	require.ErrorIs(t, err, failed)
	require.Equal(t, store.ImportResult{Tasks: 1}, total)
	require.Equal(t, []string{"a", "x"}, stored)
}
