// Package batchline reads and writes the lines of batch files: the input
// lines a client uploads, the output and error lines kiln produces, and the
// records of the result chunks in between. It reads streams line by line, so
// memory stays independent of file size.
package batchline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong marks a line longer than the scanner's limit. The scanner
// skips the rest of such a line and goes on with the next.
var ErrLineTooLong = errors.New("line too long")

// Scanner reads lines of any length up to a limit, numbering them from 1 as
// an editor does. Unlike bufio.Scanner it survives an over-long line.
type Scanner struct {
	r       *bufio.Reader
	max     int
	buf     []byte
	line    int
	offset  int64 // bytes consumed before the current line
	next    int64
	tooLong bool
	err     error
}

// scanBufferSize is the buffer a Scanner reads through.
const scanBufferSize = 64 << 10

// NewScanner reads r with lines of at most maxLine bytes.
func NewScanner(r io.Reader, maxLine int) *Scanner {
	return &Scanner{r: bufio.NewReaderSize(r, scanBufferSize), max: maxLine}
}

// Next advances to the next line, blank ones included, and reports whether
// there is one. The final newline is optional.
func (s *Scanner) Next() bool {
	if s.err != nil {
		return false
	}
	s.buf = s.buf[:0]
	s.tooLong = false
	s.offset = s.next
	read := 0
	for {
		chunk, err := s.r.ReadSlice('\n')
		read += len(chunk)
		if !s.tooLong {
			if len(s.buf)+len(chunk) > s.max+2 { // +2: the line ending, \n or \r\n
				s.tooLong = true
				s.buf = s.buf[:0]
			} else {
				s.buf = append(s.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			s.next += int64(read)
			s.endLine()
			return true
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			s.next += int64(read)
			if read == 0 {
				s.err = io.EOF
				return false
			}
			s.endLine()
			return true
		default:
			s.err = err
			return false
		}
	}
}

// endLine counts the line read into buf and cuts its line ending. Only
// then is its length known: the last line may lack the ending, and the
// ending may be \r\n.
func (s *Scanner) endLine() {
	s.line++
	s.buf = bytes.TrimSuffix(s.buf, []byte("\n"))
	s.buf = bytes.TrimSuffix(s.buf, []byte("\r"))
	if len(s.buf) > s.max {
		s.tooLong = true
		s.buf = s.buf[:0]
	}
}

// Bytes is the current line without its line ending. It is valid until the
// next call to Next. It is empty for a line that was too long.
func (s *Scanner) Bytes() []byte { return s.buf }

// Line is the current line's number, from 1.
func (s *Scanner) Line() int { return s.line }

// Offset is the byte offset of the current line in the stream.
func (s *Scanner) Offset() int64 { return s.offset }

// TooLong reports whether the current line exceeded the limit.
func (s *Scanner) TooLong() bool { return s.tooLong }

// Err is the first read error, or nil at a clean end of stream.
func (s *Scanner) Err() error {
	if errors.Is(s.err, io.EOF) {
		return nil
	}
	if s.err != nil {
		return fmt.Errorf("batchline: read line %d: %w", s.line+1, s.err)
	}
	return nil
}

// Blank reports whether b holds only white space.
func Blank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }
