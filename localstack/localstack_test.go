// The test of the AWS flavour on LocalStack, where Docker runs: the same
// scenario the emulator suite covers without Docker, on LocalStack's S3,
// SQS and Lambda.
package localstack_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"
	"github.com/moby/moby/api/types/container"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

const (
	localstackImage = "localstack/localstack:4.4"
	postgresImage   = "postgres:15-alpine"
	region          = "us-east-1"
	account         = "000000000000"
	bucket          = "kiln"
	waitFor         = 3 * time.Minute
)

// TestMain points the AWS SDK at LocalStack's test credentials, and never
// at the instance metadata service.
func TestMain(m *testing.M) {
	testenv.SetAWSTestEnv()
	os.Exit(m.Run())
}

// TestLocalStack runs kiln's AWS scenario on LocalStack: S3 notifies an SQS
// queue (with a dead-letter queue) of the inbox; kiln serve consumes it and
// runs inbox_import as a remote Lambda function, the zip of make lambda
// deployed to LocalStack's Lambda (provided.al2023); the object becomes a
// file and a batch that completes; a poison message reaches the
// dead-letter queue; and the Lambda answers a kiln event invoked directly.
//
// Without Docker it does not run, and says so (testenv.RequireDocker): the
// emulator suite covers each step.
func TestLocalStack(t *testing.T) {
	testenv.RequireDocker(t, "TestInboxSQS* (goaws), TestBootstrapUnderRIE and TestRemoteFunction (the Lambda Runtime Interface Emulator) "+
		"and TestS3CredentialChain (MinIO)")
	ctx := context.Background()
	zipBytes := lambdaZip(t)

	// One network: the Lambda's container reaches Postgres and S3 by
	// name; the test reaches every service on loopback ports.
	nw, err := tcnetwork.New(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nw.Remove(context.Background()) })

	pg, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{Started: true,
		ContainerRequest: testcontainers.ContainerRequest{
			Image: postgresImage, ExposedPorts: []string{"5432/tcp"},
			Env:      map[string]string{"POSTGRES_USER": "kiln", "POSTGRES_PASSWORD": "kiln", "POSTGRES_DB": "kiln"},
			Networks: []string{nw.Name}, NetworkAliases: map[string][]string{nw.Name: {"postgres"}},
			WaitingFor: wait.ForAll(wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
				wait.ForListeningPort("5432/tcp")),
		}})
	testcontainers.CleanupContainer(t, pg)
	require.NoError(t, err)
	pgEndpoint, err := pg.PortEndpoint(ctx, "5432/tcp", "")
	require.NoError(t, err)

	ls, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{Started: true,
		ContainerRequest: testcontainers.ContainerRequest{
			Image: localstackImage, ExposedPorts: []string{"4566/tcp"},
			Env: map[string]string{"SERVICES": "s3,sqs,sns,lambda,iam,sts", "AWS_DEFAULT_REGION": region,
				"SQS_ENDPOINT_STRATEGY": "off", "LAMBDA_DOCKER_NETWORK": nw.Name, "LOCALSTACK_HOST": "localstack:4566"},
			Networks: []string{nw.Name}, NetworkAliases: map[string][]string{nw.Name: {"localstack"}},
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.Binds = append(hc.Binds, "/var/run/docker.sock:/var/run/docker.sock")
			},
			WaitingFor: wait.ForHTTP("/_localstack/health").WithPort("4566/tcp").WithStartupTimeout(waitFor),
		}})
	testcontainers.CleanupContainer(t, ls)
	require.NoError(t, err)
	endpoint, err := ls.PortEndpoint(ctx, "4566/tcp", "")
	require.NoError(t, err)
	base := "http://" + endpoint
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")

	// The queue and its dead-letter queue.
	sq := sqs.New(sqs.Options{Region: region, BaseEndpoint: aws.String(base), Credentials: creds})
	_, err = sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("kiln-inbox-dlq")})
	require.NoError(t, err)
	_, err = sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("kiln-inbox"), Attributes: map[string]string{
		"VisibilityTimeout": "10",
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":"arn:aws:sqs:%s:%s:kiln-inbox-dlq","maxReceiveCount":"2"}`, region, account),
	}})
	require.NoError(t, err)
	queueURL := base + "/" + account + "/kiln-inbox" // on loopback, whatever host LocalStack names
	dlqURL := base + "/" + account + "/kiln-inbox-dlq"

	// The bucket, notifying the queue of the inbox.
	mc, err := minio.New(endpoint, &minio.Options{Creds: miniocreds.NewStaticV4("test", "test", ""), Region: region})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region}))
	qc := notification.NewConfig(notification.NewArn("aws", "sqs", region, account, "kiln-inbox"))
	qc.AddEvents(notification.ObjectCreatedAll)
	qc.AddFilterPrefix("inbox/")
	cfg := notification.Configuration{}
	cfg.AddQueue(qc)
	require.NoError(t, mc.SetBucketNotification(ctx, bucket, cfg))

	// The Lambda function, from make lambda's zip.
	lc := lambda.New(lambda.Options{Region: region, BaseEndpoint: aws.String(base), Credentials: creds})
	arch := map[string]lambdatypes.Architecture{"amd64": lambdatypes.ArchitectureX8664, "arm64": lambdatypes.ArchitectureArm64}[runtime.GOARCH]
	_, err = lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("kiln"), Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Architectures: []lambdatypes.Architecture{arch}, Role: aws.String("arn:aws:iam::" + account + ":role/kiln-lambda"),
		Code: &lambdatypes.FunctionCode{ZipFile: zipBytes}, Timeout: aws.Int32(60),
		Environment: &lambdatypes.Environment{Variables: map[string]string{
			"KILN_DATABASE_URL": "postgres://kiln:kiln@postgres:5432/kiln?sslmode=disable",
			"KILN_OBJECT_STORE": "s3://test:test@" + bucket + "?endpoint=localstack:4566&secure=false&region=" + region,
			"KILN_INBOX_PREFIX": "inbox/",
		}},
	})
	require.NoError(t, err)
	require.NoError(t, lambda.NewFunctionActiveV2Waiter(lc).Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("kiln")}, waitFor))

	// kiln serve: the queue feeds its inbox, and inbox_import runs in the
	// Lambda.
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", base)
	env := kilntest.Start(t, "postgres", kilntest.Options{Configure: func(c *config.Config) {
		c.DatabaseURL = "postgres://kiln:kiln@" + pgEndpoint + "/kiln?sslmode=disable"
		c.ObjectStore = "s3://test:test@" + bucket + "?endpoint=" + endpoint + "&secure=false&region=" + region
		c.InboxPrefix = "inbox/"
		c.InboxPollInterval = -1
		c.InboxSQSURL = queueURL
		c.RemoteFunctions = []string{functions.InboxImportName + "=kiln"}
	}})
	c := env.Client()

	t.Run("InboxToBatch", func(t *testing.T) {
		input := kilntest.ChatLines(3, 0)
		put := func(key string, data []byte) {
			_, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			require.NoError(t, err)
		}
		put("inbox/ls.jsonl"+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/chat/completions"}`))
		put("inbox/ls.jsonl", input)
		var fileID string
		kilntest.Eventually(t, waitFor, func() bool {
			it := c.Files.ListAutoPaging(ctx, openai.FileListParams{})
			for it.Next() {
				if it.Current().Filename == "ls.jsonl" {
					fileID = it.Current().ID
				}
			}
			return fileID != ""
		}, "the inbox object becomes a file")
		var batchID string
		kilntest.Eventually(t, waitFor, func() bool {
			it := c.Batches.ListAutoPaging(ctx, openai.BatchListParams{})
			for it.Next() {
				if it.Current().InputFileID == fileID {
					batchID = it.Current().ID
				}
			}
			return batchID != ""
		}, "and a batch")
		b := kilntest.WaitBatch(t, c, batchID)
		require.Equal(t, openai.BatchStatusCompleted, b.Status)
		require.EqualValues(t, 3, b.RequestCounts.Completed)
		waitEmpty(t, sq, queueURL)
	})

	t.Run("Poison", func(t *testing.T) {
		_, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String("not a notification")})
		require.NoError(t, err)
		kilntest.Eventually(t, waitFor, func() bool {
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlqURL)})
			require.NoError(t, err)
			return len(out.Messages) == 1 && *out.Messages[0].Body == "not a notification"
		}, "the poison message in the dead-letter queue")
	})

	t.Run("LambdaEvent", func(t *testing.T) {
		out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("kiln"),
			Payload: []byte(`{"id":"evt_localstack","object":"event","type":"file.created","created_at":1,"data":{"id":"file_x"}}`)})
		require.NoError(t, err)
		require.Nil(t, out.FunctionError, "%s", out.Payload)
		require.JSONEq(t, `{"kind":"event","records":1}`, string(out.Payload))
	})
}

// waitEmpty waits until a queue holds no message.
func waitEmpty(t *testing.T, sq *sqs.Client, queueURL string) {
	t.Helper()
	kilntest.Eventually(t, waitFor, func() bool {
		out, err := sq.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		require.NoError(t, err)
		return out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	}, "queue %s empty", queueURL)
}

// lambdaZip builds the zip as make lambda does, for this machine's
// architecture, and returns it.
func lambdaZip(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "run", "github.com/kilnhq/kiln/internal/lambdazip", "-o", dir, runtime.GOARCH).CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err := os.ReadFile(filepath.Join(dir, "kiln-lambda-"+runtime.GOARCH+".zip"))
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, zr.File, 1)
	require.Equal(t, "bootstrap", zr.File[0].Name)
	rc, err := zr.File[0].Open()
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	require.NoError(t, err)
	require.Positive(t, n, "an empty bootstrap")
	return data
}
