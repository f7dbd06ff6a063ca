package batchline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Bitmap marks line numbers: which lines of a batch have a result. It costs
// one bit per line.
type Bitmap []uint64

// BitmapFor is an empty bitmap with room for lines 0 to lines: marking
// them never copies it, where growing by appends would hold a copy and
// its predecessor at once (a batch of 10,000,000 lines needs 1.25 MB).
func BitmapFor(lines int64) Bitmap { return make(Bitmap, 0, max(lines, 0)/64+1) }

// Set marks line i.
func (m *Bitmap) Set(i int) {
	for i/64 >= len(*m) {
		*m = append(*m, 0)
	}
	(*m)[i/64] |= 1 << (i % 64)
}

// Has reports whether line i is marked.
func (m Bitmap) Has(i int) bool { return i/64 < len(m) && m[i/64]&(1<<(i%64)) != 0 }

// maxRecordBytes bounds one chunk record: a result line plus its envelope.
const maxRecordBytes = 128 << 20

// ReadRecords streams the records of a chunk object, in order.
func ReadRecords(r io.Reader, fn func(Record) error) error {
	return eachRecord(r, func(b []byte, n int) error {
		rec, err := decodeRecord(b, n)
		if err != nil {
			return err
		}
		return fn(rec)
	})
}

// RecordLines streams the line of each record of a chunk object, in order,
// a line at a time, so that its memory is flat whatever the object's size.
// It reads the agent's form (AppendIndexRecord) without encoding/json, and
// any other as ReadRecords does.
func RecordLines(r io.Reader, fn func(line int) error) error {
	return eachRecord(r, func(b []byte, n int) error {
		line, ok := agentRecord(b)
		if !ok {
			rec, err := decodeRecord(b, n)
			if err != nil {
				return err
			}
			line = rec.Line
		}
		return fn(line)
	})
}

// recordReaders are the buffered readers of chunk records, kept between
// reads: a finalizer reads thousands of small chunk objects, 16 at a time,
// and a reader of its own for each took 64 KB of garbage a chunk.
var recordReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, scanBufferSize) }}

// eachRecord calls fn with each record of a chunk object that is not
// blank, and its line number in the object.
func eachRecord(r io.Reader, fn func(b []byte, n int) error) error {
	br := recordReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		recordReaders.Put(br)
	}()
	sc := &Scanner{r: br, max: maxRecordBytes}
	for sc.Next() {
		if sc.TooLong() {
			return fmt.Errorf("batchline: chunk record on line %d is over %d bytes", sc.Line(), maxRecordBytes)
		}
		if Blank(sc.Bytes()) {
			continue
		}
		if err := fn(sc.Bytes(), sc.Line()); err != nil {
			return err
		}
	}
	return sc.Err()
}

func decodeRecord(b []byte, n int) (Record, error) {
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("batchline: chunk record on line %d: %w", n, err)
	}
	return rec, nil
}

// AppendIndexRecord appends the agent's form of a chunk index's record,
// {"line":N,"ok":B} as json.Marshal writes a Record with no data, and a
// newline.
func AppendIndexRecord(dst []byte, line int, ok bool) []byte {
	dst = append(dst, `{"line":`...)
	dst = strconv.AppendInt(dst, int64(line), 10)
	if ok {
		return append(dst, ",\"ok\":true}\n"...)
	}
	return append(dst, ",\"ok\":false}\n"...)
}

// agentRecord reads a record of the agent's form (AppendIndexRecord),
// exactly; ok is false for any other.
func agentRecord(b []byte) (line int, ok bool) {
	const head = `{"line":`
	if !bytes.HasPrefix(b, []byte(head)) {
		return 0, false
	}
	i := len(head)
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 10 {
		line = line*10 + int(b[i]-'0')
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return 0, false
	}
	switch string(b[i:]) {
	case `,"ok":true}`, `,"ok":false}`:
		return line, true
	}
	return 0, false
}
