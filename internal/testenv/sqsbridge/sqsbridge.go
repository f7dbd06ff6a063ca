// Package sqsbridge lets a current aws-sdk-go-v2 SQS client talk to goaws,
// the Go SQS emulator kiln's tests run. The SDK speaks only SQS's JSON
// protocol (X-Amz-Target: AmazonSQS.<Action>, JSON bodies) since
// service/sqs v1.28; goaws v0.4.5 speaks only the older query protocol
// (Action=<Action> forms, XML answers) and answers the JSON one with "Bad
// Request". A Bridge is an http.Handler that takes the JSON calls, makes the
// same call to goaws in the query protocol and answers in JSON, so that
// goaws keeps every queue semantic: visibility timeouts, long polling,
// redrive to a dead-letter queue after maxReceiveCount.
//
// It bridges the calls kiln and its tests make: CreateQueue, GetQueueUrl,
// DeleteQueue, PurgeQueue, GetQueueAttributes, SetQueueAttributes,
// SendMessage, SendMessageBatch, ReceiveMessage, DeleteMessage and
// ChangeMessageVisibility, without message attributes. Any other call is
// answered UnsupportedOperation. goaws's errors become SQS's JSON errors
// (QueueDoesNotExist, ReceiptHandleIsInvalid, MessageNotInflight, ...).
//
// One thing it adds: goaws counts a message's receives for its redrive but
// always reports ApproximateReceiveCount as 1. The bridge counts the
// receives it passes on, per message ID, and reports that count instead, so
// that a consumer sees what SQS would tell it.
//
// Queue URLs in answers are rewritten to point at the bridge (goaws makes
// them as http://REGION.HOST:PORT/ACCOUNT/NAME); a queue URL in a call is
// passed on as it is, since goaws reads only its last segment.
package sqsbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// targetPrefix starts the X-Amz-Target header of every SQS JSON call.
const targetPrefix = "AmazonSQS."

// Bridge forwards SQS JSON-protocol calls to a goaws server.
type Bridge struct {
	goaws  string // goaws's base URL, like http://127.0.0.1:4100
	client *http.Client

	mu       sync.Mutex
	receives map[string]int // receives passed on, per message ID
	calls    map[string]int // calls handled, per action
	changed  chan struct{}  // closed and replaced at every call
}

// New returns a bridge to the goaws server at goawsURL (its base URL, such
// as http://127.0.0.1:4100).
func New(goawsURL string) *Bridge {
	return &Bridge{
		goaws:    strings.TrimRight(goawsURL, "/"),
		client:   &http.Client{},
		receives: map[string]int{},
		calls:    map[string]int{},
		changed:  make(chan struct{}),
	}
}

// Calls reports how many calls of action (such as "ChangeMessageVisibility")
// the bridge has handled, successful or not.
func (b *Bridge) Calls(action string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[action]
}

// WaitCalls waits until the bridge has handled at least n calls of action,
// or ctx ends.
func (b *Bridge) WaitCalls(ctx context.Context, action string, n int) error {
	for {
		b.mu.Lock()
		got, changed := b.calls[action], b.changed
		b.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqsbridge: %d of %d %s calls: %w", got, n, action, ctx.Err())
		case <-changed:
		}
	}
}

func (b *Bridge) count(action string) {
	b.mu.Lock()
	b.calls[action]++
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// apiError is an SQS error as the JSON protocol sends it.
type apiError struct {
	status  int
	code    string // SQS's error code, like QueueDoesNotExist
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, &apiError{http.StatusBadRequest, "InvalidAction",
			"sqsbridge: want a POST with X-Amz-Target: AmazonSQS.<Action> (SQS's JSON protocol)"})
		return
	}
	b.count(action)
	var in map[string]any
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil && err != io.EOF {
		writeError(w, &apiError{http.StatusBadRequest, "SerializationException", err.Error()})
		return
	}
	out, err := b.call(r.Context(), action, in, r.Host)
	if err != nil {
		ae, ok := err.(*apiError)
		if !ok {
			ae = &apiError{http.StatusInternalServerError, "InternalError", err.Error()}
		}
		writeError(w, ae)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if q, ok := queryErrorCodes[e.code]; ok {
		w.Header().Set("X-Amzn-Query-Error", q+";Sender")
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}

// queryErrorCodes are the codes SQS's query protocol has for its errors,
// where they differ from the JSON ones. SQS sends them in the
// X-Amzn-Query-Error header, and the SDK reports them as the error's code.
var queryErrorCodes = map[string]string{
	"QueueDoesNotExist":            "AWS.SimpleQueueService.NonExistentQueue",
	"MessageNotInflight":           "AWS.SimpleQueueService.MessageNotInflight",
	"BatchEntryIdsNotDistinct":     "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
	"EmptyBatchRequest":            "AWS.SimpleQueueService.EmptyBatchRequest",
	"TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
	"UnsupportedOperation":         "AWS.SimpleQueueService.UnsupportedOperation",
	"QueueNameExists":              "QueueAlreadyExists",
	"ReceiptHandleIsInvalid":       "ReceiptHandleIsInvalid",
}

// call makes one JSON call as a query call to goaws and returns the JSON
// answer. host is the bridge's host, for the queue URLs it answers.
func (b *Bridge) call(ctx context.Context, action string, in map[string]any, host string) (any, error) {
	form := url.Values{"Action": {action}, "Version": {"2012-11-05"}}
	if err := queryForm(action, in, form); err != nil {
		return nil, err
	}
	body, err := b.post(ctx, form)
	if err != nil {
		return nil, err
	}
	switch action {
	case "CreateQueue", "GetQueueUrl":
		var resp struct {
			URL string `xml:"CreateQueueResult>QueueUrl"`
			Get string `xml:"GetQueueUrlResult>QueueUrl"`
		}
		if err := xml.Unmarshal(body, &resp); err != nil {
			return nil, err
		}
		return map[string]string{"QueueUrl": bridgeURL(host, resp.URL+resp.Get)}, nil
	case "GetQueueAttributes":
		var resp struct {
			Attrs []struct{ Name, Value string } `xml:"GetQueueAttributesResult>Attribute"`
		}
		if err := xml.Unmarshal(body, &resp); err != nil {
			return nil, err
		}
		attrs := map[string]string{}
		for _, a := range resp.Attrs {
			attrs[a.Name] = a.Value
		}
		return map[string]any{"Attributes": redrive(attrs)}, nil
	case "SendMessage":
		var resp struct {
			MessageID string `xml:"SendMessageResult>MessageId"`
			MD5       string `xml:"SendMessageResult>MD5OfMessageBody"`
		}
		if err := xml.Unmarshal(body, &resp); err != nil {
			return nil, err
		}
		return map[string]string{"MessageId": resp.MessageID, "MD5OfMessageBody": resp.MD5}, nil
	case "SendMessageBatch":
		var resp struct {
			Entries []struct {
				ID        string `xml:"Id"`
				MessageID string `xml:"MessageId"`
				MD5       string `xml:"MD5OfMessageBody"`
			} `xml:"SendMessageBatchResult>SendMessageBatchResultEntry"`
		}
		if err := xml.Unmarshal(body, &resp); err != nil {
			return nil, err
		}
		ok := make([]map[string]string, 0, len(resp.Entries))
		for _, e := range resp.Entries {
			ok = append(ok, map[string]string{"Id": e.ID, "MessageId": e.MessageID, "MD5OfMessageBody": e.MD5})
		}
		return map[string]any{"Successful": ok, "Failed": []any{}}, nil
	case "ReceiveMessage":
		return b.received(body, in)
	default: // answers without a result
		return map[string]any{}, nil
	}
}

// bridged lists the calls the bridge makes, with the JSON members each
// takes.
var bridged = map[string][]string{
	"CreateQueue":             {"QueueName", "Attributes", "tags"},
	"GetQueueUrl":             {"QueueName", "QueueOwnerAWSAccountId"},
	"DeleteQueue":             {"QueueUrl"},
	"PurgeQueue":              {"QueueUrl"},
	"GetQueueAttributes":      {"QueueUrl", "AttributeNames"},
	"SetQueueAttributes":      {"QueueUrl", "Attributes"},
	"SendMessage":             {"QueueUrl", "MessageBody", "DelaySeconds"},
	"SendMessageBatch":        {"QueueUrl", "Entries"},
	"ReceiveMessage":          {"QueueUrl", "MaxNumberOfMessages", "WaitTimeSeconds", "VisibilityTimeout", "AttributeNames", "MessageSystemAttributeNames", "MessageAttributeNames", "ReceiveRequestAttemptId"},
	"DeleteMessage":           {"QueueUrl", "ReceiptHandle"},
	"ChangeMessageVisibility": {"QueueUrl", "ReceiptHandle", "VisibilityTimeout"},
}

// queryForm adds the JSON members of a call to form, as the query
// protocol names them.
func queryForm(action string, in map[string]any, form url.Values) error {
	members, ok := bridged[action]
	if !ok {
		return &apiError{http.StatusBadRequest, "UnsupportedOperation", "sqsbridge: " + action + " is not bridged to goaws"}
	}
	for name, v := range in {
		known := false
		for _, m := range members {
			known = known || m == name
		}
		if !known {
			return &apiError{http.StatusBadRequest, "UnsupportedOperation", fmt.Sprintf("sqsbridge: %s.%s is not bridged to goaws", action, name)}
		}
		switch name {
		case "Attributes": // map of name to value
			m, ok := v.(map[string]any)
			if !ok {
				return invalid(action, name)
			}
			names := make([]string, 0, len(m))
			for k := range m {
				names = append(names, k)
			}
			sort.Strings(names)
			for i, k := range names {
				form.Set(fmt.Sprintf("Attribute.%d.Name", i+1), k)
				form.Set(fmt.Sprintf("Attribute.%d.Value", i+1), fmt.Sprint(m[k]))
			}
		case "AttributeNames", "MessageSystemAttributeNames": // lists
			l, ok := v.([]any)
			if !ok {
				return invalid(action, name)
			}
			// Both lists go to goaws as one AttributeName.N list.
			for _, s := range l {
				i := 1
				for form.Has(fmt.Sprintf("AttributeName.%d", i)) {
					i++
				}
				form.Set(fmt.Sprintf("AttributeName.%d", i), fmt.Sprint(s))
			}
		case "MessageAttributeNames", "ReceiveRequestAttemptId", "tags", "QueueOwnerAWSAccountId":
			// Nothing goaws would use: no message attributes are bridged,
			// queues are not FIFO, and there is one account.
		case "Entries":
			l, ok := v.([]any)
			if !ok {
				return invalid(action, name)
			}
			for i, e := range l {
				entry, ok := e.(map[string]any)
				if !ok {
					return invalid(action, name)
				}
				for k, ev := range entry {
					switch k {
					case "Id", "MessageBody", "DelaySeconds":
						form.Set(fmt.Sprintf("SendMessageBatchRequestEntry.%d.%s", i+1, k), fmt.Sprint(ev))
					default:
						return &apiError{http.StatusBadRequest, "UnsupportedOperation", fmt.Sprintf("sqsbridge: %s entry member %s is not bridged to goaws", action, k)}
					}
				}
			}
		default: // strings and numbers
			switch v.(type) {
			case string, json.Number:
				form.Set(name, fmt.Sprint(v))
			default:
				return invalid(action, name)
			}
		}
	}
	return nil
}

func invalid(action, member string) error {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("sqsbridge: %s.%s has an unexpected JSON type", action, member)}
}

// post sends a query call to goaws and returns its XML answer, or the
// error it answered, as SQS's JSON protocol names it.
func (b *Bridge) post(ctx context.Context, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.goaws+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sqsbridge: goaws: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("sqsbridge: goaws: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	var e struct {
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	if xml.Unmarshal(body, &e) != nil || e.Code == "" {
		return nil, &apiError{http.StatusInternalServerError, "InternalError",
			fmt.Sprintf("sqsbridge: goaws answered %s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	return nil, &apiError{http.StatusBadRequest, errorCode(resp.StatusCode, e.Type, e.Code), e.Message}
}

// errorCode maps goaws's error (its HTTP status, Type and Code) to SQS's
// JSON error code.
func errorCode(status int, typ, code string) string {
	switch {
	case code == "AWS.SimpleQueueService.NonExistentQueue":
		return "QueueDoesNotExist"
	case status == http.StatusNotFound: // goaws's "message does not exist"
		return "ReceiptHandleIsInvalid"
	case code == "AWS.SimpleQueueService.QueueExists":
		return "QueueNameExists"
	case code == "AWS.SimpleQueueService.MessageNotInFlight":
		return "MessageNotInflight"
	case code == "InvalidMessageContents":
		return "InvalidMessageContents"
	case typ == "InvalidAttributeValue" || strings.HasSuffix(code, "InvalidAttributeValue"):
		return "InvalidAttributeValue"
	}
	if c, ok := strings.CutPrefix(code, "AWS.SimpleQueueService."); ok && c != "GeneralError" && c != "ValidationError" {
		return c // TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct, EmptyBatchRequest
	}
	return "InvalidParameterValue"
}

// received turns goaws's ReceiveMessage answer into SQS's, with the
// receive counts the bridge keeps and the attributes that were asked for.
func (b *Bridge) received(body []byte, in map[string]any) (any, error) {
	var resp struct {
		Messages []struct {
			MessageID     string `xml:"MessageId"`
			ReceiptHandle string `xml:"ReceiptHandle"`
			MD5OfBody     string `xml:"MD5OfBody"`
			Body          string `xml:"Body"`
			Attrs         []struct {
				Name  string `xml:"Name"`
				Value string `xml:"Value"`
			} `xml:"Attribute"`
		} `xml:"ReceiveMessageResult>Message"`
	}
	if err := xml.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, key := range []string{"AttributeNames", "MessageSystemAttributeNames"} {
		if l, ok := in[key].([]any); ok {
			for _, n := range l {
				want[fmt.Sprint(n)] = true
			}
		}
	}
	msgs := make([]map[string]any, 0, len(resp.Messages))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range resp.Messages {
		b.receives[m.MessageID]++
		attrs := map[string]string{}
		for _, a := range m.Attrs {
			attrs[a.Name] = a.Value
		}
		attrs["ApproximateReceiveCount"] = strconv.Itoa(b.receives[m.MessageID])
		for name := range attrs {
			if !want["All"] && !want[name] {
				delete(attrs, name)
			}
		}
		msg := map[string]any{"MessageId": m.MessageID, "ReceiptHandle": m.ReceiptHandle, "MD5OfBody": m.MD5OfBody, "Body": m.Body}
		if len(attrs) > 0 {
			msg["Attributes"] = attrs
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return map[string]any{}, nil
	}
	return map[string]any{"Messages": msgs}, nil
}

// redrive rewrites goaws's RedrivePolicy, which names the dead-letter
// queue by name and gives maxReceiveCount as a string (and "0" and "" when
// there is none), as SQS does: the queue's ARN and a number, and no policy
// at all when there is none.
func redrive(attrs map[string]string) map[string]string {
	p, ok := attrs["RedrivePolicy"]
	if !ok {
		return attrs
	}
	var in struct {
		MaxReceiveCount     json.Number `json:"maxReceiveCount"`
		DeadLetterTargetArn string      `json:"deadLetterTargetArn"`
	}
	if json.Unmarshal([]byte(p), &in) != nil {
		return attrs
	}
	n, err := strconv.Atoi(string(in.MaxReceiveCount))
	if err != nil || n == 0 || in.DeadLetterTargetArn == "" {
		delete(attrs, "RedrivePolicy")
		return attrs
	}
	arn := in.DeadLetterTargetArn
	if !strings.HasPrefix(arn, "arn:") {
		// goaws gives the name; its ARNs are arn:aws:sqs:REGION:ACCOUNT:NAME,
		// like the queue's own.
		if q, ok := attrs["QueueArn"]; ok {
			if i := strings.LastIndex(q, ":"); i >= 0 {
				arn = q[:i+1] + arn
			}
		}
	}
	out, _ := json.Marshal(map[string]any{"deadLetterTargetArn": arn, "maxReceiveCount": n})
	attrs["RedrivePolicy"] = string(out)
	return attrs
}

// bridgeURL points a goaws queue URL at the bridge: http://HOST/ACCOUNT/NAME.
func bridgeURL(host, goawsURL string) string {
	u, err := url.Parse(goawsURL)
	if err != nil || host == "" {
		return goawsURL
	}
	return (&url.URL{Scheme: "http", Host: host, Path: u.Path}).String()
}
