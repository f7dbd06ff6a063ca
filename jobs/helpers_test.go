package jobs

import (
	"io"
	"strings"

	"github.com/riverqueue/river"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// job wraps args as River hands them to a worker.
func job[T river.JobArgs](args T) *river.Job[T] { return &river.Job[T]{Args: args} }
