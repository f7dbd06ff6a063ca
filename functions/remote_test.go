package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
)

// fakeLambda answers Invoke as a Lambda function would.
type fakeLambda struct {
	got *lambda.InvokeInput
	out *lambda.InvokeOutput
	err error
}

func (f *fakeLambda) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	f.got = in
	return f.out, f.err
}

// TestRemote checks what a Remote function sends and how it reads the
// answers: a result, a function error (recorded, retried), a permanent
// one (a dead letter at once), a failed call, and its own timeout.
func TestRemote(t *testing.T) {
	t.Parallel()
	local := functions.Function{Name: "inbox_import", Events: []string{"object.created"},
		Handle: func(context.Context, functions.Event) error { panic("runs remotely") }}
	ev := functions.Event{ID: "evt_1", Object: "event", Type: "object.created", CreatedAt: 7, Data: json.RawMessage(`{"key":"inbox/a"}`), ProjectID: "proj_1"}
	ctx := context.Background()

	t.Run("Result", func(t *testing.T) {
		t.Parallel()
		f := &fakeLambda{out: &lambda.InvokeOutput{StatusCode: 200, Payload: []byte(`{"kind":"invocation"}`)}}
		fn := functions.Remote{Client: f, FunctionName: "arn:aws:lambda:eu-west-1:1:function:kiln"}.Wrap(local)
		require.Equal(t, local.Name, fn.Name)
		require.Equal(t, local.Events, fn.Events)
		require.NoError(t, fn.Handle(ctx, ev))
		require.Equal(t, "arn:aws:lambda:eu-west-1:1:function:kiln", aws.ToString(f.got.FunctionName))
		require.EqualValues(t, "RequestResponse", f.got.InvocationType)
		require.JSONEq(t, `{"object":"function.invocation","function":"inbox_import","project_id":"proj_1",
			"event":{"id":"evt_1","object":"event","type":"object.created","created_at":7,"data":{"key":"inbox/a"}}}`, string(f.got.Payload))
	})

	t.Run("FunctionError", func(t *testing.T) {
		t.Parallel()
		f := &fakeLambda{out: &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"),
			Payload: []byte(`{"errorMessage":"bucket unreachable","errorType":"errorString"}`)}}
		err := functions.Remote{Client: f, FunctionName: "kiln"}.Wrap(local).Handle(ctx, ev)
		require.ErrorContains(t, err, "function error (Unhandled)")
		require.ErrorContains(t, err, "bucket unreachable", "the payload is the invocation's last error")
		require.False(t, functions.IsPermanent(err), "retried")
	})

	t.Run("Permanent", func(t *testing.T) {
		t.Parallel()
		f := &fakeLambda{out: &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"),
			Payload: []byte(`{"errorMessage":"bad sidecar","errorType":"` + functions.PermanentErrorType + `"}`)}}
		err := functions.Remote{Client: f, FunctionName: "kiln"}.Wrap(local).Handle(ctx, ev)
		require.ErrorContains(t, err, "bad sidecar")
		require.True(t, functions.IsPermanent(err), "a dead letter at once")
	})

	t.Run("LongPayload", func(t *testing.T) {
		t.Parallel()
		f := &fakeLambda{out: &lambda.InvokeOutput{FunctionError: aws.String("Unhandled"), Payload: []byte(strings.Repeat("x", 10<<10))}}
		err := functions.Remote{Client: f, FunctionName: "kiln"}.Wrap(local).Handle(ctx, ev)
		require.Less(t, len(err.Error()), 5<<10, "kept bounded")
	})

	t.Run("CallFails", func(t *testing.T) {
		t.Parallel()
		f := &fakeLambda{err: errors.New("ResourceNotFoundException: Function not found")}
		err := functions.Remote{Client: f, FunctionName: "kiln"}.Wrap(local).Handle(ctx, ev)
		require.ErrorContains(t, err, "Function not found")
		require.False(t, functions.IsPermanent(err))
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		// A real client against a Lambda endpoint on loopback that never
		// answers.
		hung := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-hung:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(hung) })
		client := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
		err := functions.Remote{Client: client, FunctionName: "kiln", Timeout: 200 * time.Millisecond}.Wrap(local).Handle(ctx, ev)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.False(t, functions.IsPermanent(err))
	})
}
