package llmsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kilnhq/kiln/internal/llmsim"
)

func Example() {
	sim, err := llmsim.New(llmsim.Config{OutputTokens: 12, TTFT: -1, TPOT: -1})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{
		"model": "sim-model",
		"messages": [{"role": "user", "content": "What does a kiln do?"}]
	}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var completion struct {
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&completion); err != nil {
		panic(err)
	}
	fmt.Println(completion.Choices[0].Message.Content)
	fmt.Println(completion.Choices[0].FinishReason, completion.Usage["prompt_tokens"], completion.Usage["completion_tokens"])
	fmt.Println(sim.Stats().Completed)
	// Output:
	// The plan reads some file after its simple model. Done.
	// stop 13 12
	// 1
}

func Example_structuredOutput() {
	sim, err := llmsim.New(llmsim.Config{TTFT: -1, TPOT: -1})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{
		"model": "sim-model",
		"messages": [{"role": "user", "content": "Rate this kiln."}],
		"response_format": {"type": "json_schema", "json_schema": {"name": "rating", "strict": true, "schema": {
			"type": "object",
			"properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}, "verdict": {"enum": ["buy", "skip"]}},
			"required": ["stars", "verdict"],
			"additionalProperties": false
		}}}
	}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var completion struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&completion); err != nil {
		panic(err)
	}
	fmt.Println(completion.Choices[0].Message.Content)
	// Output:
	// {"stars": 1, "verdict": "skip"}
}
