package curation

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Versioned datasets: an export saved under a name is a new version of
// that dataset, an immutable snapshot of its files in the Hugging Face
// datasets layout (data/train-0000i-of-0000N.jsonl or .parquet) with a
// manifest: the export's options, the counts of examples per conquest type,
// model and source, each data file's sha256 and the content hash over them.
// The dataset card (README.md) and manifest.json are written from the
// manifest when a version is downloaded. Versions are diffed by task: a
// task whose examples hash differently has changed.

// DatasetShardRows is the most rows one Parquet file of a dataset holds.
const DatasetShardRows = 50_000

// datasetDataDir is where a version's data files are, as Hugging Face
// lays them out.
const datasetDataDir = "data/"

// Manifest describes a dataset version.
type Manifest struct {
	// Filters is the export request the version was saved from.
	Filters     ExportOptions  `json:"filters"`
	Format      string         `json:"format"`
	FileFormat  string         `json:"file_format"`
	Rows        int64          `json:"rows" doc:"Examples."`
	Tasks       int64          `json:"tasks" doc:"Tasks that gave an example."`
	Counts      ManifestCounts `json:"counts"`
	Files       []ManifestFile `json:"files"`
	ContentHash string         `json:"content_hash" doc:"sha256 of the data files' \"<sha256>  <path>\" lines, in path order."`
}

// ManifestCounts are a version's examples per conquest type, per model of
// the chosen output, and per source (gold, corrected, pairwise, ratings).
type ManifestCounts struct {
	Types   map[string]int64 `json:"types"`
	Models  map[string]int64 `json:"models"`
	Sources map[string]int64 `json:"sources"`
}

// ManifestFile is one data file of a version.
type ManifestFile struct {
	Path   string `json:"path"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// contentHash is the sha256 of the files' "<sha256>  <path>" lines (as
// sha256sum prints them), in path order.
func contentHash(files []ManifestFile) string {
	sorted := append([]ManifestFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s  %s\n", f.SHA256, f.Path)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkFileFormat refuses a file format the export format has no form in.
func checkFileFormat(o ExportOptions) error {
	if o.FileFormat == FileParquet && o.Format == FormatLabelStudio {
		return apierror.Invalid("file_format", "label_studio is JSON only: choose jsonl.")
	}
	return nil
}

// DatasetSaver saves dataset versions.
type DatasetSaver struct {
	Store  *store.Store
	Bucket objectstore.Bucket
}

// Save writes the examples that o selects in the project as the next
// version of the dataset name, and records it.
func (s DatasetSaver) Save(ctx context.Context, project, curator, name string, o ExportOptions) (store.DatasetVersion, error) {
	if o.Format == FormatLabelStudio {
		return store.DatasetVersion{}, apierror.Invalid("format", "A dataset is JSONL or Parquet rows: label_studio is not one.")
	}
	if o.FileFormat == "" {
		o.FileFormat = FileJSONL
	}
	filter := store.TaskFilter{Project: project, Type: o.Type}
	if o.Format == FormatICL || (o.Format == FormatSFT && o.Source == "gold") {
		gold := true
		filter.Gold = &gold
	}
	prefs, err := preferred(ctx, s.Store, project, o)
	if err != nil {
		return store.DatasetVersion{}, err
	}
	skip, err := duplicates(ctx, s.Store, project, o)
	if err != nil {
		return store.DatasetVersion{}, err
	}

	// The examples go to a temporary file first: a Parquet file's count of
	// shards is in its name.
	tmp, err := os.CreateTemp("", "kiln-dataset-*.jsonl")
	if err != nil {
		return store.DatasetVersion{}, err
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	m := Manifest{Filters: o, Format: o.Format, FileFormat: o.FileFormat,
		Counts: ManifestCounts{Types: map[string]int64{}, Models: map[string]int64{}, Sources: map[string]int64{}}}
	var items []store.DatasetItem
	var buf bytes.Buffer
	w := newWriter(&buf, o)
	w.prefs = prefs
	w.picked = func(out store.CurationOutput, source string) {
		m.Counts.Models[out.Model]++
		m.Counts.Sources[source]++
	}
	err = s.Store.CurationEach(ctx, filter, func(t store.CurationTask, outs []store.CurationOutput) error {
		if skip[t.ID] {
			return nil
		}
		buf.Reset()
		n, err := w.task(t, outs)
		if err != nil || n == 0 {
			return err
		}
		sum := sha256.Sum256(buf.Bytes())
		items = append(items, store.DatasetItem{TaskID: t.ID, Rows: n, Hash: hex.EncodeToString(sum[:])})
		m.Rows += n
		m.Counts.Types[t.ConquestType] += n
		_, err = bw.Write(buf.Bytes())
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return store.DatasetVersion{}, err
	}
	if m.Rows == 0 {
		return store.DatasetVersion{}, apierror.InvalidCode("", "empty_export", ErrEmptyExport.Error()+".")
	}
	m.Tasks = int64(len(items))

	prefix := "curation/datasets/" + ids.New("ds_") + "/"
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return store.DatasetVersion{}, err
	}
	if o.FileFormat == FileParquet {
		m.Files, err = s.putParquet(ctx, prefix, tmp, o.Format, items, m.Rows)
	} else {
		var f ManifestFile
		f, err = s.putFile(ctx, prefix+datasetDataDir+"train-00000-of-00001.jsonl", m.Rows, func(w io.Writer) error {
			_, err := io.Copy(w, tmp)
			return err
		})
		m.Files = []ManifestFile{f}
	}
	if err != nil {
		s.removeAll(ctx, prefix, m.Files)
		return store.DatasetVersion{}, err
	}
	m.ContentHash = contentHash(m.Files)
	raw, err := json.Marshal(m)
	if err != nil {
		return store.DatasetVersion{}, err
	}
	v, err := s.Store.DatasetVersionCreate(ctx, store.DatasetVersion{ProjectID: project, Name: name, Format: o.Format, FileFormat: o.FileFormat,
		Manifest: raw, ContentHash: m.ContentHash, Rows: m.Rows, Tasks: m.Tasks, Prefix: prefix, Curator: curator, CreatedAt: time.Now().Unix()}, items)
	if err != nil {
		s.removeAll(ctx, prefix, m.Files)
	}
	return v, err
}

// putFile streams what write writes to key, hashing it on the way.
func (s DatasetSaver) putFile(ctx context.Context, key string, rows int64, write func(io.Writer) error) (ManifestFile, error) {
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		bw := bufio.NewWriterSize(io.MultiWriter(pw, h), 256<<10)
		err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	info, err := s.Bucket.Put(ctx, key, pr, -1)
	_ = pr.CloseWithError(err)
	if err != nil {
		return ManifestFile{}, err
	}
	path := key[strings.Index(key, datasetDataDir):]
	return ManifestFile{Path: path, Rows: rows, Bytes: info.Size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// putParquet writes the examples of r (lines of JSONL, items giving each
// task's count) as Parquet files of at most DatasetShardRows rows.
func (s DatasetSaver) putParquet(ctx context.Context, prefix string, r io.Reader, format string, items []store.DatasetItem, rows int64) ([]ManifestFile, error) {
	shards := (rows + DatasetShardRows - 1) / DatasetShardRows
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	item, left := 0, int64(0) // the task of the next line, and its lines left
	var files []ManifestFile
	for i := range shards {
		n := min(DatasetShardRows, rows-i*DatasetShardRows)
		key := fmt.Sprintf("%s%strain-%05d-of-%05d.parquet", prefix, datasetDataDir, i, shards)
		f, err := s.putFile(ctx, key, n, func(w io.Writer) error {
			sink, err := newParquetSink(w, format)
			if err != nil {
				return err
			}
			for range n {
				if !sc.Scan() {
					return cmpErr(sc.Err(), io.ErrUnexpectedEOF)
				}
				for left == 0 {
					left = items[item].Rows
					item++
				}
				left--
				if err := sink.line(items[item-1].TaskID, sc.Bytes()); err != nil {
					return err
				}
			}
			return sink.close()
		})
		if err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// removeAll deletes the files of a version that was not recorded.
func (s DatasetSaver) removeAll(ctx context.Context, prefix string, files []ManifestFile) {
	for _, f := range files {
		_ = s.Bucket.Delete(context.WithoutCancel(ctx), prefix+f.Path)
	}
}

// datasetCard is the version's README.md: the Hugging Face dataset card,
// its YAML front matter naming the config, its split and features.
func datasetCard(v store.DatasetVersion, m Manifest) string {
	var b strings.Builder
	b.WriteString("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: " + datasetDataDir + "train-*\n")
	if v.FileFormat == FileParquet {
		b.WriteString("dataset_info:\n  features:\n" + featuresYAML(v.Format))
		fmt.Fprintf(&b, "  splits:\n  - name: train\n    num_examples: %d\n", m.Rows)
	}
	b.WriteString("tags:\n- kiln\n- " + v.Format + "\n---\n\n")
	fmt.Fprintf(&b, "# %s, version %d\n\n", v.Name, v.Version)
	fmt.Fprintf(&b, "Exported by kiln's curation workbench as `%s` (%s): %d examples from %d tasks.\n\n", v.Format, v.FileFormat, m.Rows, m.Tasks)
	fmt.Fprintf(&b, "Content hash (sha256 over the data files): `%s`\n\n", m.ContentHash)
	b.WriteString("| file | rows | sha256 |\n|---|---|---|\n")
	for _, f := range m.Files {
		fmt.Fprintf(&b, "| %s | %d | %s |\n", f.Path, f.Rows, f.SHA256)
	}
	return b.String()
}

// ---- Routes ----

func registerDatasets(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "createCurationDatasetVersion", Method: http.MethodPost, Path: "/v1/curation/datasets",
		Summary: "Save an export as a dataset version", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Runs the export now and saves it as the next version of the named dataset: an immutable snapshot with a manifest.",
	}), d.createDatasetVersion)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationDatasets", Method: http.MethodGet, Path: "/v1/curation/datasets",
		Summary: "Dataset versions", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Every version of the project's datasets, by name, newest version first.",
	}), d.listDatasetVersions)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "retrieveCurationDatasetVersion", Method: http.MethodGet, Path: "/v1/curation/datasets/{name}/versions/{version}",
		Summary: "A dataset version and its manifest", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.getDatasetVersion)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "downloadCurationDatasetVersion", Method: http.MethodGet, Path: "/v1/curation/datasets/{name}/versions/{version}/download",
		Summary: "Download a dataset version", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "A zip of README.md (the dataset card), manifest.json and data/; with `file`, that one file alone.",
	}), d.downloadDatasetVersion)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "diffCurationDatasetVersions", Method: http.MethodGet, Path: "/v1/curation/datasets/{name}/diff",
		Summary: "What changed between two versions", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Tasks added, removed and changed (their examples differ) from version `from` to version `to`.",
	}), d.diffDatasetVersions)
}

// fileFormat is a file format, one of FileFormats.
type fileFormat string

// TransformSchema lists FileFormats and "" as the schema's enum.
func (fileFormat) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, append(append([]string(nil), FileFormats...), "")...)
}

// DatasetVersion is a dataset version as the API shows it.
type DatasetVersion struct {
	Object      string         `json:"object" enum:"curation.dataset_version"`
	Name        string         `json:"name"`
	Version     int64          `json:"version"`
	Format      string         `json:"format"`
	FileFormat  string         `json:"file_format"`
	Rows        int64          `json:"rows"`
	Tasks       int64          `json:"tasks"`
	ContentHash string         `json:"content_hash"`
	Manifest    Manifest       `json:"manifest"`
	DownloadURL string         `json:"download_url" doc:"This API's download route (a zip)."`
	Curator     string         `json:"curator"`
	CreatedAt   int64          `json:"created_at"`
	Files       []DatasetFiles `json:"files,omitempty" doc:"Presigned URLs of the data files, valid 15 minutes (in a single version)."`
}

// DatasetFiles is one data file of a version and its presigned URL.
type DatasetFiles struct {
	Path string `json:"path"`
	URL  string `json:"url"`
}

func datasetOf(v store.DatasetVersion) DatasetVersion {
	out := DatasetVersion{Object: "curation.dataset_version", Name: v.Name, Version: v.Version, Format: v.Format, FileFormat: v.FileFormat,
		Rows: v.Rows, Tasks: v.Tasks, ContentHash: v.ContentHash, Curator: v.Curator, CreatedAt: v.CreatedAt,
		DownloadURL: fmt.Sprintf("/v1/curation/datasets/%s/versions/%d/download", v.Name, v.Version)}
	_ = json.Unmarshal(v.Manifest, &out.Manifest)
	return out
}

// createCurationDatasetVersionRequest is named after its operation.
type createCurationDatasetVersionRequest struct {
	Name       string       `json:"name" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" maxLength:"100" doc:"The dataset's name: letters, digits, . _ -."`
	Format     exportFormat `json:"format"`
	Type       string       `json:"type,omitempty"`
	Source     string       `json:"source,omitempty" enum:"gold,corrected,both,"`
	PerType    int          `json:"per_type,omitempty" minimum:"0" maximum:"1000"`
	Dedupe     bool         `json:"dedupe,omitempty" doc:"Keep one task of each cluster of near-duplicate inputs (the first)."`
	FileFormat fileFormat   `json:"file_format,omitempty" doc:"jsonl (default) or parquet."`
}

type createDatasetInput struct {
	Body createCurationDatasetVersionRequest
}

type datasetOutput struct {
	Body DatasetVersion
}

func (d Deps) createDatasetVersion(ctx context.Context, in *createDatasetInput) (*datasetOutput, error) {
	b := in.Body
	o := ExportOptions{Format: string(b.Format), Type: b.Type, Source: b.Source, PerType: b.PerType, Dedupe: b.Dedupe, FileFormat: string(b.FileFormat)}
	if err := checkFileFormat(o); err != nil {
		return nil, err
	}
	v, err := DatasetSaver{Store: d.Store, Bucket: d.Bucket}.Save(ctx, projectOf(ctx), curatorOf(ctx).Name, b.Name, o)
	if err != nil {
		return nil, err
	}
	return &datasetOutput{datasetOf(v)}, nil
}

type datasetListOutput struct {
	Body listOf[DatasetVersion]
}

func (d Deps) listDatasetVersions(ctx context.Context, _ *struct{}) (*datasetListOutput, error) {
	list, err := d.Store.DatasetVersionList(ctx, projectOf(ctx), "")
	if err != nil {
		return nil, err
	}
	out := &datasetListOutput{}
	out.Body.Data = make([]DatasetVersion, len(list))
	for i, v := range list {
		out.Body.Data[i] = datasetOf(v)
	}
	return out, nil
}

type datasetVersionInput struct {
	Name    string `path:"name"`
	Version int64  `path:"version" minimum:"1"`
}

// version is a version of the request's project's dataset; another
// project's is not found.
func (d Deps) version(ctx context.Context, name string, version int64) (store.DatasetVersion, error) {
	v, err := d.Store.DatasetVersionGet(ctx, projectOf(ctx), name, version)
	if errors.Is(err, store.ErrNotFound) {
		return v, apierror.NotFound("dataset version", fmt.Sprintf("%s/%d", name, version))
	}
	return v, err
}

func (d Deps) getDatasetVersion(ctx context.Context, in *datasetVersionInput) (*datasetOutput, error) {
	v, err := d.version(ctx, in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	out := datasetOf(v)
	for _, f := range out.Manifest.Files {
		u, err := d.Bucket.PresignGet(ctx, v.Prefix+f.Path, 15*time.Minute, f.Path[len(datasetDataDir):])
		if err != nil {
			break // a store that cannot presign: the download route serves them
		}
		out.Files = append(out.Files, DatasetFiles{Path: f.Path, URL: u})
	}
	return &datasetOutput{out}, nil
}

type datasetDownloadInput struct {
	Name    string `path:"name"`
	Version int64  `path:"version" minimum:"1"`
	File    string `query:"file" doc:"One file of the version (README.md, manifest.json or a data file's path) rather than the zip."`
}

func (d Deps) downloadDatasetVersion(ctx context.Context, in *datasetDownloadInput) (*huma.StreamResponse, error) {
	v, err := d.version(ctx, in.Name, in.Version)
	if err != nil {
		return nil, err
	}
	view := datasetOf(v)
	m := view.Manifest
	manifest, _ := json.MarshalIndent(view, "", "  ")
	generated := map[string][]byte{"README.md": []byte(datasetCard(v, m)), "manifest.json": manifest}
	if in.File != "" {
		if b, ok := generated[in.File]; ok {
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				hctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
				_, _ = hctx.BodyWriter().Write(b)
			}}, nil
		}
		for _, f := range m.Files {
			if f.Path == in.File {
				rc, err := d.Bucket.Get(ctx, v.Prefix+f.Path)
				if err != nil {
					return nil, err
				}
				return &huma.StreamResponse{Body: func(hctx huma.Context) {
					defer rc.Close()
					hctx.SetHeader("Content-Type", "application/octet-stream")
					hctx.SetHeader("Content-Length", fmt.Sprint(f.Bytes))
					if _, err := io.Copy(hctx.BodyWriter(), rc); err != nil {
						panic(http.ErrAbortHandler)
					}
				}}, nil
			}
		}
		return nil, apierror.NotFound("file", in.File)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Content-Type", "application/zip")
		hctx.SetHeader("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-v%d.zip"`, v.Name, v.Version))
		if err := writeDatasetZip(ctx, hctx.BodyWriter(), d.Bucket, v, generated, m.Files); err != nil {
			// The status is sent: cut the connection, so that the client
			// sees an error rather than a short zip.
			d.Log.WarnContext(ctx, "dataset download cut short", "dataset", v.Name, "version", v.Version, "err", err)
			panic(http.ErrAbortHandler)
		}
	}}, nil
}

// writeDatasetZip writes a version as a zip: the generated files, then
// the data files (stored as they are: Parquet is compressed already).
func writeDatasetZip(ctx context.Context, w io.Writer, bucket objectstore.Bucket, v store.DatasetVersion, generated map[string][]byte, files []ManifestFile) error {
	zw := zip.NewWriter(w)
	for _, name := range []string{"README.md", "manifest.json"} {
		f, err := zw.Create(name)
		if err != nil {
			return err
		}
		if _, err := f.Write(generated[name]); err != nil {
			return err
		}
	}
	for _, mf := range files {
		method := zip.Deflate
		if v.FileFormat == FileParquet {
			method = zip.Store
		}
		f, err := zw.CreateHeader(&zip.FileHeader{Name: mf.Path, Method: method, Modified: time.Unix(v.CreatedAt, 0)})
		if err != nil {
			return err
		}
		rc, err := bucket.Get(ctx, v.Prefix+mf.Path)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// DatasetDiff is what changed from one version to another, by task.
type DatasetDiff struct {
	Object    string   `json:"object" enum:"curation.dataset_diff"`
	Name      string   `json:"name"`
	From      int64    `json:"from"`
	To        int64    `json:"to"`
	Added     []string `json:"added" doc:"Tasks in to, not in from."`
	Removed   []string `json:"removed" doc:"Tasks in from, not in to."`
	Changed   []string `json:"changed" doc:"Tasks in both whose examples differ."`
	Unchanged int64    `json:"unchanged"`
}

// DiffItems compares two versions' items (each sorted by task ID).
func DiffItems(from, to []store.DatasetItem) (added, removed, changed []string, unchanged int64) {
	added, removed, changed = []string{}, []string{}, []string{}
	i, j := 0, 0
	for i < len(from) || j < len(to) {
		switch {
		case j == len(to) || (i < len(from) && from[i].TaskID < to[j].TaskID):
			removed = append(removed, from[i].TaskID)
			i++
		case i == len(from) || to[j].TaskID < from[i].TaskID:
			added = append(added, to[j].TaskID)
			j++
		default:
			if from[i].Hash != to[j].Hash || from[i].Rows != to[j].Rows {
				changed = append(changed, to[j].TaskID)
			} else {
				unchanged++
			}
			i++
			j++
		}
	}
	return added, removed, changed, unchanged
}

type datasetDiffInput struct {
	Name string `path:"name"`
	From int64  `query:"from" minimum:"1" required:"true"`
	To   int64  `query:"to" minimum:"1" required:"true"`
}

type datasetDiffOutput struct {
	Body DatasetDiff
}

func (d Deps) diffDatasetVersions(ctx context.Context, in *datasetDiffInput) (*datasetDiffOutput, error) {
	items := make([][]store.DatasetItem, 2)
	for k, n := range []int64{in.From, in.To} {
		if _, err := d.version(ctx, in.Name, n); err != nil {
			return nil, err
		}
		var err error
		if items[k], err = d.Store.DatasetItems(ctx, projectOf(ctx), in.Name, n); err != nil {
			return nil, err
		}
	}
	out := DatasetDiff{Object: "curation.dataset_diff", Name: in.Name, From: in.From, To: in.To}
	out.Added, out.Removed, out.Changed, out.Unchanged = DiffItems(items[0], items[1])
	return &datasetDiffOutput{out}, nil
}
