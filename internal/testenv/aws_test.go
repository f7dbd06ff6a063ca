package testenv

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/minio/minio-go/v7"
)

// TestEmulatorVersions keeps the emulators' versions in step with the ones
// scripts/install-aws-emulators.sh builds and caches.
func TestEmulatorVersions(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile("../../scripts/install-aws-emulators.sh")
	require.NoError(t, err)
	for name, want := range map[string]string{"goaws": goawsVersion, "lambda-rie": rieVersion} {
		m := regexp.MustCompile(`(?ms)^` + regexp.QuoteMeta(name) + `\)\n.*?^\tversion=(\S+)$`).FindSubmatch(script)
		require.NotNil(t, m, "no version= line for %s in scripts/install-aws-emulators.sh", name)
		require.Equal(t, want, string(m[1]), name)
	}
}

func TestEmulatorBin(t *testing.T) {
	t.Setenv(EnvGoAWSBin, "/nonexistent/goaws")
	_, err := emulatorBin("goaws", goawsVersion, EnvGoAWSBin)
	require.ErrorContains(t, err, EnvGoAWSBin)
	require.NotErrorIs(t, err, errNoEmulator, "a wrong setting fails even with "+EnvAllowSkip+"=1")

	t.Setenv(EnvGoAWSBin, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	_, err = emulatorBin("goaws", goawsVersion, EnvGoAWSBin)
	require.ErrorIs(t, err, errNoEmulator)
	require.ErrorContains(t, err, "scripts/install-aws-emulators.sh goaws")
}

// TestLambdaAnswer checks how the front reads the emulator's answers.
func TestLambdaAnswer(t *testing.T) {
	t.Parallel()
	body, fe := lambdaAnswer(200, []byte(`{"ok":true}`))
	require.Equal(t, `{"ok":true}`, string(body))
	require.Empty(t, fe)

	body, fe = lambdaAnswer(200, []byte(`{"errorMessage":"boom","errorType":"errorString"}`))
	require.Equal(t, "Unhandled", fe)
	require.JSONEq(t, `{"errorMessage":"boom","errorType":"errorString"}`, string(body))

	body, fe = lambdaAnswer(200, []byte(`Task timed out after 2.00 seconds`))
	require.Equal(t, "Unhandled", fe)
	require.Regexp(t, `^\{"errorMessage":"\d{4}-\d\d-\d\dT[^ ]+ Task timed out after 2\.00 seconds"\}$`, string(body))

	_, fe = lambdaAnswer(200, []byte(`{"errorMessage":"a result that looks like an error but has no type"}`))
	require.Empty(t, fe)
	_, fe = lambdaAnswer(502, []byte(`{"errorMessage":"init failed"}`))
	require.Equal(t, "Unhandled", fe)
}

// TestS3Hold holds one object's requests through the proxy and lets the
// others by.
func TestS3Hold(t *testing.T) {
	t.Parallel()
	h := HoldS3(t, S3URL(t))
	u, client, err := s3Client(h.URL)
	require.NoError(t, err)
	ctx := context.Background()
	put := func(key string) error {
		_, err := client.PutObject(ctx, u.Host, key, strings.NewReader("x"), 1, minio.PutObjectOptions{})
		return err
	}
	hit := h.Hold("inbox/held")
	require.NoError(t, put("inbox/free"), "another key goes through, signed for the proxy")
	done := make(chan error, 1)
	go func() { done <- put("inbox/held") }()
	<-hit
	select {
	case err := <-done:
		t.Fatalf("the held request finished: %v", err)
	default:
	}
	h.Release()
	require.NoError(t, <-done)
}

func TestNotRun(t *testing.T) {
	path := t.TempDir() + "/not-run"
	t.Setenv(EnvNotRun, path)
	f := &notRunT{name: "TestSomething"}
	NotRun(f, "no Docker; TestOther covers it")
	require.Equal(t, "NOT RUN: TestSomething: no Docker; TestOther covers it", f.skip)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "NOT RUN: TestSomething: no Docker; TestOther covers it\n", string(got))
}

// notRunT records what NotRun does to a test.
type notRunT struct {
	testing.TB
	name string
	skip string
}

func (f *notRunT) Helper()               {}
func (f *notRunT) Name() string          { return f.name }
func (f *notRunT) Skip(args ...any)      { f.skip = args[0].(string) }
func (f *notRunT) Errorf(string, ...any) { panic("unexpected error") }
