package batchline

import (
	"encoding/json"
	"fmt"
	"io"
)

// Bitmap marks line numbers: which lines of a batch have a result. It costs
// one bit per line.
type Bitmap []uint64

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
	sc := NewScanner(r, maxRecordBytes)
	for sc.Next() {
		if sc.TooLong() {
			return fmt.Errorf("batchline: chunk record on line %d is over %d bytes", sc.Line(), maxRecordBytes)
		}
		if Blank(sc.Bytes()) {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("batchline: chunk record on line %d: %w", sc.Line(), err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return sc.Err()
}
