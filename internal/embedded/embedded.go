// Package embedded serves files built into the binary (go:embed) straight
// from the binary's read-only data. Reading such a file whole (fs.ReadFile,
// embed.FS.ReadFile) copies it onto the heap, where it stays live for as
// long as the server runs and raises every garbage collection's goal: the
// API reference's Swagger UI bundle alone is 1.7 MB.
package embedded

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"time"
)

// File is one embedded file, ready to serve.
type File struct {
	fsys fs.FS
	name string
	// ETag is a strong validator of the file's bytes.
	ETag string
}

// Open finds name in fsys and reads it through once, for its ETag. fsys's
// files must be seekable, as embed.FS's are.
func Open(fsys fs.FS, name string) (File, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	if _, ok := f.(io.ReadSeeker); !ok {
		return File{}, fmt.Errorf("embedded: %s cannot seek", name)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return File{}, err
	}
	return File{fsys: fsys, name: name, ETag: `"` + hex.EncodeToString(sum.Sum(nil)[:12]) + `"`}, nil
}

// Serve answers r with the file, as http.ServeContent does (ranges,
// If-None-Match), with its ETag set. The caller sets the other headers,
// Content-Type among them.
func (f File) Serve(w http.ResponseWriter, r *http.Request) {
	rf, err := f.fsys.Open(f.name)
	if err != nil {
		http.Error(w, "embedded file missing", http.StatusInternalServerError) // Open found it
		return
	}
	defer rf.Close()
	w.Header().Set("ETag", f.ETag)
	http.ServeContent(w, r, f.name, time.Time{}, rf.(io.ReadSeeker))
}
