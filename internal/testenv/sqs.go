package testenv

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kilnhq/kiln/internal/testenv/sqsbridge"
)

const (
	// EnvGoAWSURL names the base URL of a running goaws server, like
	// http://127.0.0.1:4100, which scripts/test-services.sh starts. Unset,
	// the test binary starts its own from the binary of EnvGoAWSBin.
	EnvGoAWSURL = "KILN_TEST_GOAWS_URL"
	// EnvGoAWSBin names the goaws binary. Unset, the one that
	// scripts/install-aws-emulators.sh caches is used, if it is there.
	EnvGoAWSBin = "KILN_TEST_GOAWS_BIN"

	// goawsVersion is the goaws that scripts/install-aws-emulators.sh
	// builds; a test keeps the two in step.
	goawsVersion = "v0.4.5"

	// SQSRegion and SQSAccount are the region and account of the test
	// server's queues.
	SQSRegion  = "us-east-1"
	SQSAccount = "000000000000"
)

// SQSServer is an SQS server for tests: goaws, behind a bridge
// (package sqsbridge) that lets aws-sdk-go-v2's SQS client, which speaks
// only the JSON protocol, talk to it. One serves every test of a test
// binary; each test makes its own queues.
type SQSServer struct {
	// Endpoint is the bridge's base URL, for aws-sdk-go-v2 clients
	// (sqs.Options.BaseEndpoint) and kiln: a queue URL under it, such as
	// the QueueURL of NewQueue, is all kiln needs.
	Endpoint string
	// GoAWS is goaws's own base URL (the query protocol).
	GoAWS string
	// Bridge counts the calls it forwards.
	Bridge *sqsbridge.Bridge
}

// SQS returns the test binary's SQS server: goaws at EnvGoAWSURL, or one
// started from its binary, behind a bridge on loopback. Without either it
// fails t, or skips it with KILN_TEST_ALLOW_SKIP=1.
func SQS(t testing.TB) *SQSServer {
	t.Helper()
	s, err := sqsServer()
	if err != nil {
		if errors.Is(err, errNoEmulator) {
			Unavailable(t, "testenv: this test needs an SQS emulator (goaws), but "+err.Error())
			return nil
		}
		t.Fatalf("testenv: SQS server: %v", err)
	}
	return s
}

var sqsServer = sync.OnceValues(func() (*SQSServer, error) {
	base := os.Getenv(EnvGoAWSURL)
	if base == "" {
		var err error
		if base, err = startGoAWS(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := sqsbridge.New(base)
	// It serves until the test binary exits.
	go func() { _ = http.Serve(ln, b) }()
	return &SQSServer{Endpoint: "http://" + ln.Addr().String(), GoAWS: strings.TrimRight(base, "/"), Bridge: b}, nil
})

// startGoAWS starts a goaws server for the test binary, on a free port,
// and returns its base URL. The kernel kills it when the test binary dies.
func startGoAWS() (string, error) {
	bin, err := emulatorBin("goaws", goawsVersion, EnvGoAWSBin)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kiln-goaws-")
	if err != nil {
		return "", err
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		base, err := runGoAWS(bin, dir, port)
		if err == nil {
			return base, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			return "", err
		}
	}
}

// GoAWSConfig is the configuration file of a goaws server on port: its
// queue URLs name 127.0.0.1, SQSRegion and SQSAccount; queues are made by
// the tests. scripts/test-services.sh writes the same.
func GoAWSConfig(port int) string {
	return fmt.Sprintf(`Local:
  Host: 127.0.0.1
  Port: %d
  Region: %s
  AccountId: "%s"
  LogToFile: false
  QueueAttributeDefaults:
    VisibilityTimeout: 30
    ReceiveMessageWaitTimeSeconds: 0
`, port, SQSRegion, SQSAccount)
}

func runGoAWS(bin, dir string, port int) (string, error) {
	if err := portFree(port); err != nil {
		return "", fmt.Errorf("%w: %v", errPortTaken, err)
	}
	conf := filepath.Join(dir, "goaws.yaml")
	if err := os.WriteFile(conf, []byte(GoAWSConfig(port)), 0o644); err != nil {
		return "", err
	}
	logPath := filepath.Join(dir, "log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer log.Close()
	logStart := fileSize(logPath)
	cmd := exec.Command(bin, "-config", conf, "Local")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := startProcess(cmd, syscall.SIGKILL)
	if err != nil {
		return "", err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	err = proc.waitReady(readyTimeout, func(ctx context.Context) error { return httpOK(ctx, base+"/health") })
	if err != nil {
		_ = proc.kill()
		tail := logTail(logPath, logStart)
		if strings.Contains(tail, "address already in use") {
			return "", fmt.Errorf("%w: %s", errPortTaken, tail)
		}
		return "", fmt.Errorf("goaws on port %d: %v%s", port, err, tail)
	}
	return base, nil
}

// httpOK succeeds when GET rawURL answers 200.
func httpOK(ctx context.Context, rawURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", rawURL, resp.Status)
	}
	return nil
}

// Client returns an aws-sdk-go-v2 SQS client of the server.
func (s *SQSServer) Client() *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       SQSRegion,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// QueueOptions shape a test queue.
type QueueOptions struct {
	// VisibilityTimeout is the queue's, in whole seconds (goaws checks
	// expiries once a second). Default: 30s.
	VisibilityTimeout time.Duration
	// MaxReceiveCount is the redrive policy's: after that many receives a
	// message goes to the dead-letter queue. Default: 3.
	MaxReceiveCount int
}

// Queue is a test queue with its dead-letter queue.
type Queue struct {
	// URL is the queue's URL, under the bridge's endpoint.
	URL string
	// ARN is the queue's ARN, for SNS subscriptions and notifications.
	ARN string
	// DeadLetterURL is the dead-letter queue's URL.
	DeadLetterURL string
}

// NewQueue makes a queue, named for the test, with a dead-letter queue
// that takes its messages after o.MaxReceiveCount receives. Both are
// deleted at t.Cleanup.
func (s *SQSServer) NewQueue(t testing.TB, o QueueOptions) Queue {
	t.Helper()
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.MaxReceiveCount == 0 {
		o.MaxReceiveCount = 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	c := s.Client()
	name := "kiln-" + randomHex(6)
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatalf("testenv: create queue %s-dlq: %v", name, err)
	}
	q := Queue{DeadLetterURL: *dlq.QueueUrl, ARN: s.ARN(name)}
	t.Cleanup(func() { s.deleteQueue(t, q.DeadLetterURL) })
	policy := fmt.Sprintf(`{"maxReceiveCount":%d,"deadLetterTargetArn":%q}`, o.MaxReceiveCount, s.ARN(name+"-dlq"))
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": strconv.Itoa(int(o.VisibilityTimeout.Round(time.Second) / time.Second)),
		"RedrivePolicy":     policy,
	}})
	if err != nil {
		t.Fatalf("testenv: create queue %s: %v", name, err)
	}
	q.URL = *out.QueueUrl
	t.Cleanup(func() { s.deleteQueue(t, q.URL) })
	return q
}

func (s *SQSServer) deleteQueue(t testing.TB, queueURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := s.Client().DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(queueURL)}); err != nil {
		t.Errorf("testenv: delete queue %s: %v", queueURL, err)
	}
}

// ARN is the ARN of the server's queue or topic called name.
func (s *SQSServer) ARN(name string) string {
	return "arn:aws:sqs:" + SQSRegion + ":" + SQSAccount + ":" + name
}

// NewTopic makes an SNS topic, named for the test, whose messages go to
// queue wrapped in SNS's envelope (raw delivery off), as an S3 bucket's
// notifications to a topic reach a queue subscribed to it. It returns the
// topic's ARN. SNS calls go to goaws in the query protocol: kiln never
// makes them.
func (s *SQSServer) NewTopic(t testing.TB, queue Queue) string {
	t.Helper()
	name := "kiln-topic-" + randomHex(6)
	var created struct {
		ARN string `xml:"CreateTopicResult>TopicArn"`
	}
	s.query(t, url.Values{"Action": {"CreateTopic"}, "Name": {name}}, &created)
	s.query(t, url.Values{"Action": {"Subscribe"}, "TopicArn": {created.ARN}, "Protocol": {"sqs"}, "Endpoint": {queue.ARN}}, nil)
	t.Cleanup(func() {
		form := url.Values{"Action": {"DeleteTopic"}, "TopicArn": {created.ARN}}
		if err := s.post(form, nil); err != nil {
			t.Errorf("testenv: delete topic %s: %v", name, err)
		}
	})
	return created.ARN
}

// Publish publishes message to an SNS topic of NewTopic, with subject.
func (s *SQSServer) Publish(t testing.TB, topicARN, subject, message string) {
	t.Helper()
	s.query(t, url.Values{"Action": {"Publish"}, "TopicArn": {topicARN}, "Subject": {subject}, "Message": {message}}, nil)
}

// query makes a query-protocol call of goaws and decodes its XML answer
// into out (unless nil), failing t on an error.
func (s *SQSServer) query(t testing.TB, form url.Values, out any) {
	t.Helper()
	if err := s.post(form, out); err != nil {
		t.Fatalf("testenv: goaws %s: %v", form.Get("Action"), err)
	}
}

func (s *SQSServer) post(form url.Values, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.GoAWS+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if out != nil {
		return xml.Unmarshal(body, out)
	}
	return nil
}

var errNoEmulator = errors.New("no emulator binary")

// emulatorBin returns an emulator's binary: the file env names, else the
// one scripts/install-aws-emulators.sh caches for version.
func emulatorBin(name, version, env string) (string, error) {
	if bin := os.Getenv(env); bin != "" {
		if err := executable(bin); err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return bin, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: %s is not set, and %v", errNoEmulator, env, err)
		}
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "kiln", name, version, name)
	if err := executable(bin); err != nil {
		return "", fmt.Errorf("%w: %s is not set, and scripts/install-aws-emulators.sh has not built %s (%v). "+
			"Run the tests with `make test`, or run scripts/install-aws-emulators.sh %s (about a minute) first",
			errNoEmulator, env, bin, err, name)
	}
	return bin, nil
}

// AWSTestEnv is what the AWS SDK's default chain reads, set for tests
// whose kiln calls emulators on loopback: test credentials (so that the
// chain never asks the EC2 instance metadata service, off loopback), a
// region, and no shared config or profile of the machine's.
func AWSTestEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=" + SQSRegion,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
}

// SetAWSTestEnv sets AWSTestEnv in the test binary's environment, and
// unsets what else would steer the SDK (a profile, a session token,
// endpoint overrides, container or web identity credentials). Call it
// from TestMain, before any test runs.
func SetAWSTestEnv() {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			_ = os.Unsetenv(k)
		}
	}
	for _, kv := range AWSTestEnv() {
		k, v, _ := strings.Cut(kv, "=")
		_ = os.Setenv(k, v)
	}
}
