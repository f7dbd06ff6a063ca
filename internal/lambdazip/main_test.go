package main

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteZip checks the zip Lambda takes: one entry, bootstrap, an
// executable holding the binary.
func TestWriteZip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF not really"), 0o755))
	path := filepath.Join(dir, "f.zip")
	require.NoError(t, writeZip(path, bin))

	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	require.Len(t, zr.File, 1)
	f := zr.File[0]
	require.Equal(t, "bootstrap", f.Name)
	require.Equal(t, os.FileMode(0o755), f.Mode().Perm(), "Lambda runs it")
	rc, err := f.Open()
	require.NoError(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "\x7fELF not really", string(got))

	// The same binary gives the same zip.
	again := filepath.Join(dir, "g.zip")
	require.NoError(t, writeZip(again, bin))
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	require.Equal(t, a, b)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "no temporary file left")
}

func TestBuildRefusesOtherArchitectures(t *testing.T) {
	t.Parallel()
	_, err := build(t.TempDir(), "386")
	require.ErrorContains(t, err, "amd64")
}
