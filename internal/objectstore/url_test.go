package objectstore

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFileURL(t *testing.T) {
	t.Parallel()
	cwd, err := os.Getwd()
	require.NoError(t, err)

	for _, tt := range []struct {
		url  string
		want string // "" means an error
	}{
		{"file:///var/lib/kiln", "/var/lib/kiln"},
		{"file:///var/lib/kiln/", "/var/lib/kiln"},
		{"file://localhost/var/lib/kiln", "/var/lib/kiln"},
		{"file://./data/blobs", filepath.Join(cwd, "data/blobs")},
		{"file://../data", filepath.Join(filepath.Dir(cwd), "data")},
		{"file://.", cwd},
		{"file:///with%20space", "/with space"},
		{"file://otherhost/x", ""},
		{"file:relative", ""},
		{"file://", ""},
		{"file:///x?prefix=a", ""},
		{"file://user@/x", ""},
	} {
		u, err := url.Parse(tt.url)
		require.NoError(t, err)
		got, err := parseFileURL(u)
		if tt.want == "" {
			require.Error(t, err, tt.url)
			continue
		}
		require.NoError(t, err, tt.url)
		require.Equal(t, tt.want, got, tt.url)
	}
}

func TestParseS3URL(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		url  string
		want *s3Config // nil means an error
	}{
		{"s3://bucket", &s3Config{bucket: "bucket", endpoint: "s3.amazonaws.com", secure: true}},
		{
			"s3://AK:S%2Fk@kiln-test?endpoint=127.0.0.1:9000&region=us-east-1&secure=false&prefix=/a/b/",
			&s3Config{
				bucket: "kiln-test", endpoint: "127.0.0.1:9000", region: "us-east-1",
				prefix: "a/b/", accessKey: "AK", secretKey: "S/k",
			},
		},
		{"s3://bucket/?prefix=p", &s3Config{bucket: "bucket", endpoint: "s3.amazonaws.com", secure: true, prefix: "p/"}},
		{"s3://bucket?prefix=", &s3Config{bucket: "bucket", endpoint: "s3.amazonaws.com", secure: true}},
		{"s3://", nil},
		{"s3://bucket/some/path", nil},
		{"s3://Bad_Bucket", nil},
		{"s3://AK@bucket", nil},
		{"s3://:secret@bucket", nil},
		{"s3://bucket?secure=maybe", nil},
		{"s3://bucket?endpint=x", nil},
		{"s3://bucket?endpoint=http://x:9000", nil},
		{"s3://bucket?region=a&region=b", nil},
		{"s3://bucket?prefix=../up", nil},
		{"s3://bucket?prefix=a//b", nil},
		{"s3://bucket#frag", nil},
	} {
		u, err := url.Parse(tt.url)
		require.NoError(t, err)
		got, err := parseS3URL(u)
		if tt.want == nil {
			require.Error(t, err, tt.url)
			continue
		}
		require.NoError(t, err, tt.url)
		require.Equal(t, *tt.want, got, tt.url)
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "/just/a/path", "ftp://host/x", "gs://bucket", "%zz"} {
		_, err := Open(t.Context(), raw)
		require.Error(t, err, raw)
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"a", "a/b", "a.b/.c/..d", "...", "é/🙂", "a b/c+d%20"} {
		require.NoError(t, validateKey(key), key)
	}
	for _, key := range []string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "\xff", "a\x00b"} {
		require.Error(t, validateKey(key), "%q", key)
	}
}
