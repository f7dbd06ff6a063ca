package curation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Parquet output: each export format's JSONL line as a typed row, with the
// task it came from, in the Hugging Face datasets layout for dataset
// versions (data/train-0000i-of-0000N.parquet and a dataset card). A
// message's content is a string; content that is not (a list of parts) is
// kept as its JSON text.

// File formats of exports and dataset versions.
const (
	FileJSONL   = "jsonl"
	FileParquet = "parquet"
)

// FileFormats lists the file formats.
var FileFormats = []string{FileJSONL, FileParquet}

// pqMessage is a chat message as a Parquet row holds it.
type pqMessage struct {
	Role    string `parquet:"role" json:"role"`
	Content string `parquet:"content" json:"content"`
}

// UnmarshalJSON takes content that is not a string as its JSON text.
func (m *pqMessage) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role = raw.Role
	if json.Unmarshal(raw.Content, &m.Content) != nil {
		m.Content = string(raw.Content)
	}
	return nil
}

type pqPrompt struct {
	Messages []pqMessage `parquet:"messages,list" json:"messages"`
}

// The rows of each format; TaskID is the task the row came from.
type (
	pqSFT struct {
		TaskID   string      `parquet:"task_id" json:"-"`
		Messages []pqMessage `parquet:"messages,list" json:"messages"`
	}
	pqDPO struct {
		TaskID             string      `parquet:"task_id" json:"-"`
		Input              pqPrompt    `parquet:"input" json:"input"`
		PreferredOutput    []pqMessage `parquet:"preferred_output,list" json:"preferred_output"`
		NonPreferredOutput []pqMessage `parquet:"non_preferred_output,list" json:"non_preferred_output"`
	}
	pqTRL struct {
		TaskID   string      `parquet:"task_id" json:"-"`
		Prompt   []pqMessage `parquet:"prompt,list" json:"prompt"`
		Chosen   []pqMessage `parquet:"chosen,list" json:"chosen"`
		Rejected []pqMessage `parquet:"rejected,list" json:"rejected"`
	}
	pqICL struct {
		TaskID   string          `parquet:"task_id" json:"-"`
		Type     string          `parquet:"type" json:"type"`
		Key      string          `parquet:"key" json:"key"`
		Messages []pqMessage     `parquet:"messages,list" json:"messages"`
		Output   string          `parquet:"output" json:"-"`
		RawOut   json.RawMessage `parquet:"-" json:"output"`
	}
)

// YAML of the dataset card's features, per format.
const (
	pqMessagesYAML = `    list:
    - name: role
      dtype: string
    - name: content
      dtype: string
`
	pqTaskIDYAML = "  - name: task_id\n    dtype: string\n"
)

func featuresYAML(format string) string {
	list := func(name string) string { return "  - name: " + name + "\n" + pqMessagesYAML }
	switch format {
	case FormatSFT:
		return pqTaskIDYAML + list("messages")
	case FormatDPO:
		return pqTaskIDYAML + "  - name: input\n    struct:\n    - name: messages\n" + strings.ReplaceAll(pqMessagesYAML, "    ", "      ") +
			list("preferred_output") + list("non_preferred_output")
	case FormatTRL:
		return pqTaskIDYAML + list("prompt") + list("chosen") + list("rejected")
	case FormatICL:
		return pqTaskIDYAML + "  - name: type\n    dtype: string\n  - name: key\n    dtype: string\n" + list("messages") +
			"  - name: output\n    dtype: string\n"
	}
	return ""
}

// rowSink takes an export's lines, each with its task, and writes them as
// Parquet rows.
type rowSink interface {
	line(taskID string, line []byte) error
	close() error
}

// pqRowsPerWrite is how many rows a sink hands the Parquet writer at once.
const pqRowsPerWrite = 1024

type pqSink[T any] struct {
	w    *parquet.GenericWriter[T]
	conv func(taskID string, line []byte) (T, error)
	buf  []T
}

func (s *pqSink[T]) line(taskID string, line []byte) error {
	r, err := s.conv(taskID, line)
	if err != nil {
		return err
	}
	s.buf = append(s.buf, r)
	if len(s.buf) >= pqRowsPerWrite {
		return s.flush()
	}
	return nil
}

func (s *pqSink[T]) flush() error {
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}

func (s *pqSink[T]) close() error {
	if err := s.flush(); err != nil {
		return err
	}
	return s.w.Close()
}

func newSink[T any](w io.Writer, set func(*T, string)) *pqSink[T] {
	return &pqSink[T]{
		// No creation time and a fixed writer name: the same rows make the
		// same bytes, so that a dataset's content hash is stable.
		w: parquet.NewGenericWriter[T](w, parquet.Compression(&parquet.Snappy), parquet.CreatedBy("kiln", "1", "")),
		conv: func(taskID string, line []byte) (T, error) {
			var r T
			if err := json.Unmarshal(line, &r); err != nil {
				return r, fmt.Errorf("parquet row: %w", err)
			}
			set(&r, taskID)
			return r, nil
		},
	}
}

// newParquetSink writes rows of format to w; label_studio has none.
func newParquetSink(w io.Writer, format string) (rowSink, error) {
	switch format {
	case FormatSFT:
		return newSink(w, func(r *pqSFT, id string) { r.TaskID = id }), nil
	case FormatDPO:
		return newSink(w, func(r *pqDPO, id string) { r.TaskID = id }), nil
	case FormatTRL:
		return newSink(w, func(r *pqTRL, id string) { r.TaskID = id }), nil
	case FormatICL:
		return newSink(w, func(r *pqICL, id string) {
			r.TaskID = id
			var s string
			if json.Unmarshal(r.RawOut, &s) == nil {
				r.Output = s
			} else {
				r.Output = string(r.RawOut)
			}
		}), nil
	}
	return nil, fmt.Errorf("format %s has no Parquet form", format)
}

// lineSplitter is the io.Writer an export's writer writes its lines to,
// handing each whole line to a sink with the task being written.
type lineSplitter struct {
	sink rowSink
	task string
	buf  bytes.Buffer
}

func (l *lineSplitter) Write(p []byte) (int, error) {
	l.buf.Write(p)
	for {
		b := l.buf.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := l.sink.line(l.task, b[:i]); err != nil {
			return 0, err
		}
		l.buf.Next(i + 1)
	}
}
