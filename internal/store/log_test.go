package store_test

import (
	"io"
	"log/slog"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
