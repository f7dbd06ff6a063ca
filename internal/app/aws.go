package app

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
)

// awsConfig loads the AWS SDK's configuration as the SDK's own tools do:
// credentials from its default chain (environment, shared config and SSO,
// web identity, ECS container credentials, EC2 instance profile), the
// region from region when set, else from the environment and profile.
func awsConfig(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load configuration: %w", err)
	}
	return cfg, nil
}

// awsHost reports whether host is one of AWS's own endpoints.
func awsHost(host string) bool {
	for _, suffix := range []string{".amazonaws.com", ".amazonaws.com.cn", ".api.aws"} {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// sqsURLRegion is the region an SQS queue URL names:
// sqs.REGION.amazonaws.com, REGION.queue.amazonaws.com, or LocalStack's
// sqs.REGION.localhost.localstack.cloud. "" when it names none.
func sqsURLRegion(host string) string {
	labels := strings.Split(host, ".")
	switch {
	case len(labels) >= 3 && labels[0] == "sqs":
		return labels[1]
	case len(labels) >= 4 && labels[1] == "queue" && awsHost(host):
		return labels[0]
	}
	return ""
}

// newSQSClient makes the client of the inbox's queue. Its region is
// KILN_AWS_REGION, else the queue URL's, else the SDK's; a queue that is
// not on AWS (LocalStack, an emulator) is called at its URL's host, unless
// AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL says otherwise.
func newSQSClient(ctx context.Context, cfg config.Config) (*sqs.Client, error) {
	u, err := url.Parse(cfg.InboxSQSURL)
	if err != nil {
		return nil, fmt.Errorf("KILN_INBOX_SQS_URL: %w", err)
	}
	awsCfg, err := awsConfig(ctx, cmp.Or(cfg.AWSRegion, sqsURLRegion(u.Hostname())))
	if err != nil {
		return nil, err
	}
	local := !awsHost(u.Hostname())
	if awsCfg.Region == "" {
		if !local {
			return nil, fmt.Errorf("KILN_INBOX_SQS_URL %s: no region: set KILN_AWS_REGION or AWS_REGION", cfg.InboxSQSURL)
		}
		awsCfg.Region = "us-east-1" // an emulator's; it only signs
	}
	_, global := os.LookupEnv("AWS_ENDPOINT_URL")
	_, own := os.LookupEnv("AWS_ENDPOINT_URL_SQS")
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if local && !global && !own {
			o.BaseEndpoint = aws.String(u.Scheme + "://" + u.Host)
		}
	}), nil
}

// lambdaARNRegion is the region of a Lambda function's ARN, or "".
func lambdaARNRegion(function string) string {
	// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
	parts := strings.Split(function, ":")
	if len(parts) >= 7 && parts[0] == "arn" && parts[2] == "lambda" {
		return parts[3]
	}
	return ""
}

// remoteFunctions turns KILN_REMOTE_FUNCTIONS into the functions' Lambda
// functions, by name. Lambda's endpoint is the SDK's, or
// AWS_ENDPOINT_URL_LAMBDA (LocalStack, the Runtime Interface Emulator).
func remoteFunctions(ctx context.Context, cfg config.Config) (map[string]functions.Remote, error) {
	if len(cfg.RemoteFunctions) == 0 {
		return nil, nil
	}
	out := map[string]functions.Remote{}
	clients := map[string]*lambda.Client{} // by region
	for _, entry := range cfg.RemoteFunctions {
		name, target, _ := strings.Cut(entry, "=")
		region := cmp.Or(cfg.AWSRegion, lambdaARNRegion(target))
		c, ok := clients[region]
		if !ok {
			awsCfg, err := awsConfig(ctx, region)
			if err != nil {
				return nil, err
			}
			if awsCfg.Region == "" {
				return nil, fmt.Errorf("KILN_REMOTE_FUNCTIONS %s: no region: give the function's ARN, or set KILN_AWS_REGION or AWS_REGION", entry)
			}
			c = lambda.NewFromConfig(awsCfg)
			clients[region] = c
		}
		out[name] = functions.Remote{Client: c, FunctionName: target}
	}
	return out, nil
}

// startInboxSQS consumes KILN_INBOX_SQS_URL, when set.
func (a *App) startInboxSQS(ctx context.Context) error {
	if a.Cfg.InboxSQSURL == "" {
		return nil
	}
	client, err := newSQSClient(ctx, a.Cfg)
	if err != nil {
		return err
	}
	q := &functions.InboxSQS{Client: client, QueueURL: a.Cfg.InboxSQSURL, Inbox: a.Inbox, Store: a.Store, Registry: a.Functions,
		Concurrency: a.Cfg.InboxSQSConcurrency, Metrics: functions.NewSQSMetrics(a.Metrics), Log: a.Log.With("component", "inbox")}
	if err := q.Start(ctx); err != nil {
		return err
	}
	a.InboxSQS = q
	return nil
}
