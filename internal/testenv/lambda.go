package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

const (
	// EnvLambdaRIEBin names the AWS Lambda Runtime Interface Emulator's
	// binary, which scripts/test-services.sh sets. Unset, the one that
	// scripts/install-aws-emulators.sh caches is used, if it is there.
	EnvLambdaRIEBin = "KILN_TEST_LAMBDA_RIE_BIN"

	// rieVersion is the emulator that scripts/install-aws-emulators.sh
	// builds; a test keeps the two in step.
	rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"

	// LambdaFunctionName is the name a test's Lambda function answers to.
	LambdaFunctionName = "kiln-test"
)

// Lambda is a Lambda function for one test: the AWS Lambda Runtime
// Interface Emulator running a real bootstrap binary, behind a front that
// answers Lambda's Invoke API as AWS does. The emulator serves the Invoke
// path but not all of its contract: a function's error comes back as a 200
// whose body is the error payload ({"errorMessage":…,"errorType":…}), and a
// timeout as the text "Task timed out after N.00 seconds", both without
// the X-Amz-Function-Error header by which Lambda (and the SDK's
// InvokeOutput.FunctionError) tells an error from a result. The front adds
// that header to those answers (and gives a timeout Lambda's JSON form),
// answers ResourceNotFoundException for another function's name, and lets
// one invocation in at a time, as the emulator takes them.
type Lambda struct {
	// Endpoint is the Invoke API's base URL: AWS_ENDPOINT_URL_LAMBDA for
	// kiln, BaseEndpoint for an SDK client.
	Endpoint string

	rie     string // the emulator's base URL
	logPath string
	mu      sync.Mutex // one invocation at a time
}

// LambdaOptions shape a test's Lambda function.
type LambdaOptions struct {
	// Env is the function's environment, as NAME=value (the emulator
	// passes its own on). Nothing else of the test's is passed but PATH
	// and HOME.
	Env []string
	// Timeout is the function's timeout, in whole seconds. Default: 30s.
	Timeout time.Duration
}

// StartLambda runs bootstrap (a Lambda custom runtime's executable) under
// the emulator until t ends.
func StartLambda(t testing.TB, bootstrap string, o LambdaOptions) *Lambda {
	t.Helper()
	bin, err := emulatorBin("lambda-rie", rieVersion, EnvLambdaRIEBin)
	if err != nil {
		if errors.Is(err, errNoEmulator) {
			Unavailable(t, "testenv: this test needs the AWS Lambda Runtime Interface Emulator, but "+err.Error())
			return nil
		}
		t.Fatalf("testenv: %v", err)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	dir := t.TempDir()
	l := &Lambda{logPath: filepath.Join(dir, "log")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: Lambda emulator log, last lines:%s", logTail(l.logPath, 0))
		}
	})
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err == nil {
			var api int
			if api, err = freePort(); err == nil && api != port {
				err = l.start(t, bin, bootstrap, dir, port, api, o)
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("testenv: start the Lambda emulator: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	l.Endpoint = "http://" + ln.Addr().String()
	return l
}

func (l *Lambda) start(t testing.TB, bin, bootstrap, dir string, port, api int, o LambdaOptions) error {
	if err := portFree(port); err != nil {
		return fmt.Errorf("%w: %v", errPortTaken, err)
	}
	if err := portFree(api); err != nil {
		return fmt.Errorf("%w: %v", errPortTaken, err)
	}
	logStart := fileSize(l.logPath)
	log, err := os.OpenFile(l.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(api), bootstrap)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"AWS_LAMBDA_FUNCTION_NAME=" + LambdaFunctionName,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(o.Timeout.Round(time.Second)/time.Second))}, o.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := startProcess(cmd, syscall.SIGKILL)
	if err != nil {
		return err
	}
	// Until the emulator listens; any answer will do.
	err = proc.waitReady(readyTimeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if err != nil {
		_ = proc.kill()
		tail := logTail(l.logPath, logStart)
		if strings.Contains(tail, "address already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, tail)
		}
		return fmt.Errorf("%v%s", err, tail)
	}
	t.Cleanup(func() {
		if err := proc.kill(); err != nil {
			t.Errorf("testenv: Lambda emulator: %v", err)
		}
	})
	l.rie = "http://" + addr
	return nil
}

// Client returns an aws-sdk-go-v2 Lambda client of the function.
func (l *Lambda) Client() *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       SQSRegion,
		BaseEndpoint: aws.String(l.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// LogTail returns the last lines of the emulator's and the function's
// output.
func (l *Lambda) LogTail() string { return logTail(l.logPath, 0) }

// ServeHTTP is the front: Lambda's Invoke API over the emulator.
func (l *Lambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/2015-03-31/functions/")
	name, ok2 := strings.CutSuffix(name, "/invocations")
	if r.Method != http.MethodPost || !ok || !ok2 {
		lambdaError(w, http.StatusNotFound, "UnrecognizedClientException", "testenv: only Invoke is served: POST /2015-03-31/functions/NAME/invocations")
		return
	}
	// A name, an ARN (…:function:NAME) or either with a :qualifier.
	if i := strings.Index(name, ":function:"); i >= 0 {
		name = name[i+len(":function:"):]
	}
	name, _, _ = strings.Cut(name, ":")
	if name != LambdaFunctionName {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
		return
	}
	if t := r.Header.Get("X-Amz-Invocation-Type"); t != "" && t != "RequestResponse" {
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "testenv: only RequestResponse invocations are served, not "+t)
		return
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, l.rie+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		lambdaError(w, http.StatusInternalServerError, "ServiceException", err.Error())
		return
	}
	for _, h := range []string{"X-Amz-Client-Context", "X-Amzn-Trace-Id"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		lambdaError(w, http.StatusBadGateway, "ServiceException", "testenv: the Lambda emulator: "+err.Error())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		lambdaError(w, http.StatusBadGateway, "ServiceException", "testenv: the Lambda emulator: "+err.Error())
		return
	}
	body, functionError := lambdaAnswer(resp.StatusCode, body)
	if functionError == "" && resp.StatusCode != http.StatusOK {
		lambdaError(w, http.StatusInternalServerError, "ServiceException", fmt.Sprintf("testenv: the Lambda emulator answered %s: %s", resp.Status, body))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if functionError != "" {
		w.Header().Set("X-Amz-Function-Error", functionError)
	}
	_, _ = w.Write(body)
}

// lambdaAnswer reads the emulator's answer to an invocation as Lambda
// would give it: the body, and the function error ("Unhandled") when it
// is one.
func lambdaAnswer(status int, body []byte) ([]byte, string) {
	if msg, ok := bytes.CutPrefix(body, []byte("Task timed out after")); ok {
		p, _ := json.Marshal(map[string]string{"errorMessage": time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " Task timed out after" + string(msg)})
		return p, "Unhandled"
	}
	var p map[string]any
	if json.Unmarshal(body, &p) == nil {
		_, hasMessage := p["errorMessage"].(string)
		_, hasType := p["errorType"].(string)
		if hasMessage && (hasType || status != http.StatusOK) {
			return body, "Unhandled"
		}
	}
	return body, ""
}

// lambdaError answers an error of the Invoke API itself, as Lambda does.
func lambdaError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}
