package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent: retrying cannot fix it.
func IsPermanent(err error) bool { return errors.As(err, new(permanentError)) }

// PermanentErrorType is the errorType of a Lambda function's error payload
// that marks the error permanent: the Lambda handler (functions/lambda)
// answers so for an error marked with Permanent, and a Remote function
// makes its invocation a dead letter at once.
const PermanentErrorType = "kiln.PermanentError"

// InvocationObject is the "object" of an Invocation payload.
const InvocationObject = "function.invocation"

// Invocation is what a Remote function sends its Lambda function: the
// function to run and the event, in the shape functions receive it. kiln's
// Lambda handler (cmd/kiln-lambda) runs that one function on the event; a
// Lambda function of your own reads the event from "event".
type Invocation struct {
	Object   string `json:"object"`
	Function string `json:"function"`
	Event    Event  `json:"event"`
	// ProjectID is the event's project.
	ProjectID string `json:"project_id,omitempty"`
}

// LambdaInvoker is the part of aws-sdk-go-v2's Lambda client that a Remote
// function uses.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// RemoteTimeoutDefault bounds one call of a Remote function by default:
// Lambda's longest timeout (15 minutes), and a minute to spare.
const RemoteTimeoutDefault = 16 * time.Minute

// Remote runs a function as an AWS Lambda function: each invocation calls
// Lambda's Invoke (RequestResponse) with an Invocation payload and waits
// for the answer. The invocation is retried and becomes a dead letter as
// one in-process is: a failed call, and a function error (the answer's
// X-Amz-Function-Error, with its payload, which is recorded on the
// invocation as its last error), make it run again later; an error
// payload of type PermanentErrorType makes it a dead letter at once.
type Remote struct {
	Client LambdaInvoker
	// FunctionName is the Lambda function's name, ARN or partial ARN,
	// with an optional qualifier (name:alias).
	FunctionName string
	// Timeout bounds one call. Default: RemoteTimeoutDefault.
	Timeout time.Duration
}

// errorPayloadMax bounds how much of an error payload is kept.
const errorPayloadMax = 4 << 10

// Wrap returns fn, subscribed to the same events under the same name, run
// by r's Lambda function instead of in-process.
func (r Remote) Wrap(fn Function) Function {
	return Function{Name: fn.Name, Events: fn.Events, Handle: func(ctx context.Context, ev Event) error {
		return r.invoke(ctx, fn.Name, ev)
	}}
}

func (r Remote) invoke(ctx context.Context, name string, ev Event) error {
	payload, err := json.Marshal(Invocation{Object: InvocationObject, Function: name, Event: ev, ProjectID: ev.ProjectID})
	if err != nil {
		return Permanent(err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = RemoteTimeoutDefault
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := r.Client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(r.FunctionName),
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("lambda %s: %w", r.FunctionName, err)
	}
	if out.FunctionError == nil {
		return nil
	}
	body := out.Payload
	if len(body) > errorPayloadMax {
		body = append(body[:errorPayloadMax:errorPayloadMax], "…"...)
	}
	err = fmt.Errorf("lambda %s: function error (%s): %s", r.FunctionName, aws.ToString(out.FunctionError), body)
	var p struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(out.Payload, &p) == nil && p.ErrorType == PermanentErrorType {
		return Permanent(err)
	}
	return err
}
