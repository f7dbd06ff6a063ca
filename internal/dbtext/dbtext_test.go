package dbtext_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/dbtext"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	require.NoError(t, dbtext.Check("héllo, wörld ✓"))
	require.ErrorIs(t, dbtext.Check("a\x00b"), dbtext.ErrNUL)
	require.ErrorIs(t, dbtext.Check("a\xffb"), dbtext.ErrInvalidUTF8)
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, path string
		err             error
	}{
		{name: "clean", doc: `{"a": "b", "c": [1, "two", {"d": null}]}`},
		{name: "escaped backslash is text", doc: `{"a": "\\u0000"}`},
		{name: "NUL escape in a value", doc: `{"input_file_id": "file-\u0000"}`, path: "input_file_id", err: dbtext.ErrNUL},
		{name: "nested value", doc: `{"metadata": {"k": "v", "bad": "x\u0000"}}`, path: "metadata.bad", err: dbtext.ErrNUL},
		{name: "array element", doc: `{"part_ids": ["ok", 3, "p\u0000"]}`, path: "part_ids[2]", err: dbtext.ErrNUL},
		{name: "after an object in an array", doc: `{"x": [{"a": 1}, "\u0000"]}`, path: "x[1]", err: dbtext.ErrNUL},
		{name: "invalid UTF-8 in a value", doc: "{\"name\": \"a\xffb\"}", path: "name", err: dbtext.ErrInvalidUTF8},
		{name: "invalid UTF-8 in a key", doc: "{\"metadata\": {\"k\xff\": \"v\"}}", path: `metadata."k\ufffd"`, err: dbtext.ErrInvalidUTF8},
		{name: "NUL in a key", doc: `{"metadata": {"k\u0000": "v"}}`, path: `metadata."k\x00"`, err: dbtext.ErrNUL},
		{name: "top-level string", doc: `"\u0000"`, path: "", err: dbtext.ErrNUL},
		{name: "not JSON is left alone", doc: "{\"a\": \xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, err := dbtext.CheckJSON([]byte(tc.doc))
			if tc.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, tc.path, path)
		})
	}
}

func FuzzCheckJSON(f *testing.F) {
	f.Add([]byte(`{"a": ["b", {"c": "\u0000"}]}`))
	f.Add([]byte("{\"a\xff\": 1}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		path, err := dbtext.CheckJSON(doc)
		if err == nil && path != "" {
			t.Fatalf("a path without an error: %q", path)
		}
	})
}
