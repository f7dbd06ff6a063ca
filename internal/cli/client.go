package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/schollz/progressbar/v3"
)

// defaultURL is where a client command looks for kiln without a setting:
// kiln serve's default address.
const defaultURL = "http://localhost:4080"

// clientFlags reach a kiln server. They read the OpenAI SDKs' variables
// too, so that a shell set up for a script also works for kiln's client;
// the key's own variable is not KILN_API_KEY, which is a setting of kiln
// serve (a key the server accepts), and would make a serve started in the
// same shell skip its first key.
type clientFlags struct {
	URL    string `name:"url" env:"KILN_BASE_URL,KILN_URL,OPENAI_BASE_URL" default:"${client_url_default}" help:"kiln's base URL, with or without /v1."`
	APIKey string `name:"key" env:"KILN_CLIENT_KEY,OPENAI_API_KEY" help:"An API key of this kiln."`
}

// keyVars and urlVars name the variables clientFlags read, for messages.
const (
	keyVars = "KILN_CLIENT_KEY (or OPENAI_API_KEY)"
	urlVars = "KILN_BASE_URL (or OPENAI_BASE_URL)"
)

// errNoKey is the error of a client command without a key.
var errNoKey = errors.New("no API key: set " + keyVars + " to a key of this kiln, or pass --key. " +
	"kiln serve prints its first key when it starts on a new database; kiln keys create makes more")

// base is the API's base URL: the setting without a trailing /v1 (as
// OPENAI_BASE_URL has it), plus /v1.
func (f clientFlags) base() string {
	u := strings.TrimRight(f.URL, "/")
	return strings.TrimSuffix(u, "/v1") + "/v1"
}

// client is an OpenAI client of the kiln, or errNoKey.
func (f clientFlags) client() (*openai.Client, error) {
	if f.APIKey == "" {
		if _, ok := os.LookupEnv("KILN_API_KEY"); ok {
			return nil, fmt.Errorf("%w (KILN_API_KEY is set, but it is kiln serve's setting, which client commands do not read)", errNoKey)
		}
		return nil, errNoKey
	}
	c := openai.NewClient(option.WithBaseURL(f.base()+"/"), option.WithAPIKey(f.APIKey))
	return &c, nil
}

// explain turns the errors a client meets most, a refused key and a kiln
// that does not answer, into what to do about them.
func (f clientFlags) explain(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("kiln at %s refused the API key (401): set %s to a key of this kiln (kiln keys list shows them)", f.base(), keyVars)
	}
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		// The SDK's own text is the status line; the envelope says why.
		what := strconv.Itoa(apiErr.StatusCode)
		if apiErr.Code != "" {
			what += " " + apiErr.Code
		}
		return fmt.Errorf("kiln answered %s: %s", what, apiErr.Message)
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) && netErr.Op == "dial" {
		return fmt.Errorf("cannot reach kiln at %s (%w): start it (make run, or kiln serve), or set %s or --url to where it listens", f.base(), netErr.Err, urlVars)
	}
	return err
}

// newBar is a progress bar on w that ends its line when it finishes; with
// bytes, it counts bytes and shows the sizes done and in all.
func newBar(w io.Writer, total int64, desc string, bytes bool, opts ...progressbar.Option) *progressbar.ProgressBar {
	opts = append([]progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	}, opts...)
	return progressbar.NewOptions64(total, opts...)
}
