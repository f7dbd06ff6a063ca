package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
)

// Client calls kiln's HTTP API: the Administration API with the admin key,
// the project routes (models, conquest types) with an API key.
type Client struct {
	// BaseURL is kiln's address, without /v1.
	BaseURL string
	// AdminKey opens /v1/organization/....
	AdminKey string
	// APIKey opens the project routes the data sources read.
	APIKey string
	// HTTP sends the requests. Default: a client with a 60s timeout.
	HTTP *http.Client
}

// APIError is an answer of kiln's other than 2xx, with OpenAI's error
// envelope's message.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("kiln answered %d (%s): %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("kiln answered %d: %s", e.Status, e.Message)
}

// isStatus reports whether err is kiln's answer with the status.
func isStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// NormalizeBaseURL trims the trailing slash and /v1 people copy from
// OpenAI clients' base URLs.
func NormalizeBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1")
	return strings.TrimSuffix(u.String(), "/"), nil
}

// errNotConfigured is a call before the provider has its configuration,
// which values unknown until apply delay.
var errNotConfigured = errors.New("the kiln provider is not configured yet: its base_url or keys are unknown until apply")

// admin calls the Administration API.
func (c *Client) admin(ctx context.Context, method, path string, body, out any) error {
	if c == nil {
		return errNotConfigured
	}
	if c.AdminKey == "" {
		return errors.New("the provider has no admin key: set admin_key or KILN_ADMIN_KEY")
	}
	return c.do(ctx, c.AdminKey, method, path, body, out)
}

// do sends one request and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var env struct {
			Error struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, &env) == nil && env.Error.Message != "" {
			e.Message, e.Code = env.Error.Message, env.Error.Code
		} else {
			e.Message = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// The shapes of kiln's answers the provider reads (api/*.go).

type apiKey struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	RedactedValue string   `json:"redacted_value"`
	CreatedAt     int64    `json:"created_at"`
	Scopes        []string `json:"scopes"`
	Value         string   `json:"value"`
}

type webhookEndpoint struct {
	ID                string   `json:"id"`
	URL               string   `json:"url"`
	Name              string   `json:"name"`
	EventTypes        []string `json:"event_types"`
	SigningSecretHint string   `json:"signing_secret_hint"`
	SigningSecret     string   `json:"signing_secret"`
	CreatedAt         int64    `json:"created_at"`
}

type curator struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	KeyPrefix string   `json:"key_prefix"`
	Projects  []string `json:"projects"`
	CreatedAt int64    `json:"created_at"`
	RevokedAt *int64   `json:"revoked_at"`
	Key       string   `json:"key"`
}

type model struct {
	ID        string `json:"id"`
	OwnedBy   string `json:"owned_by"`
	Synthetic bool   `json:"synthetic"`
	Agents    int64  `json:"agents"`
}

type conquestType struct {
	ID          string  `json:"id"`
	Version     int64   `json:"version"`
	Versions    []int64 `json:"versions"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
}

type list[T any] struct {
	Data []T `json:"data"`
}

// splitImportID reads "PROJECT/ID" or "ID" (the default project).
func splitImportID(raw string) (project, id string, err error) {
	project, id, ok := strings.Cut(raw, "/")
	if !ok {
		project, id = defaultProject, raw
	}
	if project == "" || id == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("import ID %q: want ID or PROJECT_ID/ID", raw)
	}
	return project, id, nil
}

// defaultProject is kiln's project for resources made without one.
const defaultProject = "proj_default"

// diagnostics is the framework's diagnostics, named short.
type diagnostics = diag.Diagnostics
