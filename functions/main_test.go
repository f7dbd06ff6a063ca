package functions_test

import (
	"os"
	"testing"

	"github.com/kilnhq/kiln/internal/testenv"
)

// TestMain points the AWS SDK at test credentials: the SQS inbox's kilns
// call goaws on loopback, and must never ask the instance metadata service.
func TestMain(m *testing.M) {
	testenv.SetAWSTestEnv()
	os.Exit(m.Run())
}
