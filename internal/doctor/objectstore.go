package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
)

// Disk thresholds of a folder store: the share of the filesystem that is
// free, as the alerts in monitoring/prometheus/rules have them.
const (
	DiskFreeWarn = 0.10
	DiskFreeFail = 0.03
)

// objectStore writes, reads and deletes an object, and moves one through
// presigned URLs, then checks a folder store's disk.
func (d *doctor) objectStore(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	folder := strings.HasPrefix(d.cfg.ObjectStore, "file://")
	opts := objectstore.Options{CORSOrigins: d.cfg.CORSOrigins}
	if d.cfg.SigningKey != "" {
		opts.SigningKey = []byte(d.cfg.SigningKey)
	}
	var srv *http.Server
	if folder {
		// A folder's URLs point at a kiln that serves them, which hands
		// them out only for its own uploads and files: the doctor serves
		// them itself, on loopback.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.add("object store", Fail, "listen for presigned URLs: %v", err)
			d.add("disk", Skip, "needs the object store")
			return
		}
		opts.PublicURL = "http://" + ln.Addr().String()
		srv = &http.Server{ReadHeaderTimeout: d.timeout}
		defer srv.Close()
		go func() { _ = srv.Serve(ln) }()
	}
	b, err := objectstore.OpenWith(ctx, d.cfg.ObjectStore, opts)
	if err != nil {
		d.add("object store", Fail, "%v (KILN_OBJECT_STORE)", err)
		d.add("disk", Skip, "needs the object store")
		return
	}
	defer b.Close()
	if srv != nil {
		mux := http.NewServeMux()
		mux.Handle(objectstore.SignedPath, objectstore.Handler(b))
		srv.Handler = mux
	}
	start := time.Now()
	if err := roundTrip(ctx, b); err != nil {
		d.add("object store", Fail, "%s: %v", storeName(d.cfg.ObjectStore), err)
	} else {
		d.add("object store", OK, "%s: wrote, read and deleted an object; a presigned PUT and GET round trip (%s)",
			storeName(d.cfg.ObjectStore), round(time.Since(start)))
	}
	if len(d.cfg.CORSOrigins) > 0 {
		if err := objectstore.CheckCORS(ctx, b, d.cfg.CORSOrigins); err != nil {
			d.add("cors", Fail, "browsers on KILN_CORS_ORIGINS cannot use presigned URLs: %v", err)
		} else {
			d.add("cors", OK, "presigned URLs answer browsers on %s", strings.Join(d.cfg.CORSOrigins, ", "))
		}
	}
	c := objectstore.DiskCollector(b)
	if c == nil {
		d.add("disk", Skip, "not a folder store: the S3 server keeps its own disk")
		return
	}
	free, size, ok := diskSpace(c)
	if !ok {
		d.add("disk", Fail, "cannot measure the filesystem of %s", storeName(d.cfg.ObjectStore))
		return
	}
	s, detail := diskStatus(free, size)
	d.add("disk", s, "%s", detail)
}

// storeName is an object store URL without its credentials and query.
func storeName(raw string) string {
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = rest[at+1:]
		}
		rest, _, _ = strings.Cut(rest, "?")
		return scheme + "://" + rest
	}
	return raw
}

// roundTrip puts, reads and deletes an object, then PUTs one through a
// presigned URL and GETs it back through another, and deletes it.
func roundTrip(ctx context.Context, b objectstore.Bucket) error {
	key := "kiln-doctor/" + ids.New("")
	body := []byte("kiln doctor " + key + "\n")
	if _, err := b.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	defer func() { _ = b.Delete(context.WithoutCancel(ctx), key) }()
	if err := readBack(ctx, b, key, body); err != nil {
		return err
	}
	if err := b.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := b.Stat(ctx, key); !errors.Is(err, objectstore.ErrNotExist) {
		return fmt.Errorf("delete: the object is still there (%v)", err)
	}

	put, err := b.PresignPut(ctx, key, time.Minute)
	if err != nil {
		return fmt.Errorf("presign PUT: %w", err)
	}
	if err := send(ctx, http.MethodPut, put, body, nil); err != nil {
		return fmt.Errorf("presigned PUT: %w", err)
	}
	if err := readBack(ctx, b, key, body); err != nil {
		return fmt.Errorf("after the presigned PUT: %w", err)
	}
	get, err := b.PresignGet(ctx, key, time.Minute, "")
	if err != nil {
		return fmt.Errorf("presign GET: %w", err)
	}
	var got bytes.Buffer
	if err := send(ctx, http.MethodGet, get, nil, &got); err != nil {
		return fmt.Errorf("presigned GET: %w", err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		return fmt.Errorf("presigned GET: got %d bytes that differ from the %d written", got.Len(), len(body))
	}
	if err := b.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// readBack checks that key holds want.
func readBack(ctx context.Context, b objectstore.Bucket, key string, want []byte) error {
	r, err := b.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	defer r.Close()
	got, err := io.ReadAll(io.LimitReader(r, int64(len(want))+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read: got %d bytes that differ from the %d written", len(got), len(want))
	}
	return nil
}

// send makes one request to a presigned URL and copies a 2xx answer's body
// to out.
func send(ctx context.Context, method, url string, body []byte, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	if out != nil {
		_, err = io.Copy(out, resp.Body)
	}
	return err
}

// diskSpace reads a folder store's free and total bytes from its
// collector; ok is false when it reports none (the folder is unreadable).
func diskSpace(c prometheus.Collector) (free, size float64, ok bool) {
	reg := prometheus.NewRegistry()
	if reg.Register(c) != nil {
		return 0, 0, false
	}
	families, err := reg.Gather()
	if err != nil {
		return 0, 0, false
	}
	n := 0
	for _, f := range families {
		if len(f.GetMetric()) != 1 {
			continue
		}
		v := f.GetMetric()[0].GetGauge().GetValue()
		switch f.GetName() {
		case "kiln_object_store_free_bytes":
			free, n = v, n+1
		case "kiln_object_store_size_bytes":
			size, n = v, n+1
		}
	}
	return free, size, n == 2 && size > 0
}

// diskStatus judges a folder store's filesystem by its free share.
func diskStatus(free, size float64) (Status, string) {
	share := free / size
	detail := fmt.Sprintf("%s free of %s (%.0f%%)", bytesText(free), bytesText(size), share*100)
	switch {
	case share < DiskFreeFail:
		return Fail, detail + fmt.Sprintf("; under %.0f%%: uploads and results will fail, free space", DiskFreeFail*100)
	case share < DiskFreeWarn:
		return Warn, detail + fmt.Sprintf("; under %.0f%%", DiskFreeWarn*100)
	}
	return OK, detail
}

// bytesText is a size in binary units.
func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
