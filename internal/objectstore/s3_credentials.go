package objectstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// sdkCredentials feeds minio-go from the AWS SDK's default credential
// chain, so that the one S3 implementation (minio-go) takes credentials
// as every AWS tool does: the environment (AWS_ACCESS_KEY_ID, ...), the
// shared config and credentials files with their profiles and SSO, web
// identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN: EKS's IRSA),
// ECS's container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
// _FULL_URI: task roles) and the EC2 instance profile. The SDK's cache
// refreshes temporary credentials before they expire.
type sdkCredentials struct {
	provider aws.CredentialsProvider

	mu      sync.Mutex
	expires time.Time // zero: the credentials do not expire
}

// sdkExpiryWindow is how long before their expiry credentials are
// fetched again.
const sdkExpiryWindow = 5 * time.Minute

// newSDKCredentials loads the SDK's default chain, for region when set
// (web identity calls STS there).
func newSDKCredentials(ctx context.Context, region string) (*credentials.Credentials, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS credential chain: %w", err)
	}
	return credentials.New(&sdkCredentials{provider: cfg.Credentials}), nil
}

func (c *sdkCredentials) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	ctx := context.Background()
	if cc != nil && cc.Context != nil {
		ctx = cc.Context
	}
	v, err := c.provider.Retrieve(ctx)
	if err == nil && v.CanExpire && time.Until(v.Expires) < sdkExpiryWindow {
		// The SDK's cache hands them out until they expire; S3 may see a
		// request after that. Fetch new ones ahead of it.
		if cache, ok := c.provider.(*aws.CredentialsCache); ok {
			cache.Invalidate()
			v, err = cache.Retrieve(ctx)
		}
	}
	if err != nil {
		return credentials.Value{}, fmt.Errorf("AWS credential chain: %w", err)
	}
	c.mu.Lock()
	c.expires = time.Time{}
	if v.CanExpire {
		c.expires = v.Expires
	}
	c.mu.Unlock()
	return credentials.Value{AccessKeyID: v.AccessKeyID, SecretAccessKey: v.SecretAccessKey, SessionToken: v.SessionToken,
		Expiration: v.Expires, SignerType: credentials.SignatureV4}, nil
}

func (c *sdkCredentials) Retrieve() (credentials.Value, error) { return c.RetrieveWithCredContext(nil) }

func (c *sdkCredentials) IsExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.expires.IsZero() && time.Now().Add(sdkExpiryWindow).After(c.expires)
}
