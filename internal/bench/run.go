package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/kilnhq/kiln/internal/llmsim"
)

// Run measures each model over the sweep, finds each knee, and with
// o.Kiln runs the workload through kiln.
func Run(ctx context.Context, o Options) (*Results, error) {
	o = o.WithDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	res := &Results{
		Version:   FormatVersion,
		StartedAt: time.Now().UTC().Truncate(time.Second),
		Engine:    o.EngineURL,
		Workload:  Workload{InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, Requests: o.Requests},
		KneeGain:  o.KneeGain,
	}
	c := newClient(o)
	defer c.close()
	for _, model := range o.Models {
		// One request first: a cold engine's first answer (compilation,
		// a model switch) would otherwise count against concurrency 1.
		if s := c.stream(ctx, model, int(c.nextID.Add(1))-1); s.err != nil {
			return nil, fmt.Errorf("%s: the warm-up request: %w", model, s.err)
		}
		m := ModelResult{Model: model}
		for _, conc := range o.Concurrency {
			p, err := c.measure(ctx, model, conc, o.requestsAt(conc))
			if err != nil {
				return nil, err
			}
			if o.Progress != nil {
				o.Progress(model, p)
			}
			m.Points = append(m.Points, p)
		}
		m.Knee, m.Saturated = Knee(m.Points, o.KneeGain)
		m.Best = Best(m.Points)
		res.Models = append(res.Models, m)
	}
	if o.Kiln != nil {
		if err := runKiln(ctx, o, res.Models); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Sim is an in-process simulator (kiln sim) for a run without a GPU.
type Sim struct {
	// URL is its base URL, with /v1.
	URL    string
	Server *llmsim.Server
	srv    *http.Server
}

// StartSim serves a simulator for cfg on a loopback port until Stop.
func StartSim(cfg llmsim.Config) (*Sim, error) {
	s, err := llmsim.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sim := &Sim{URL: "http://" + ln.Addr().String() + "/v1", Server: s,
		srv: &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = sim.srv.Serve(ln) }() // ends with Stop
	return sim, nil
}

// Stop closes the simulator and its connections.
func (s *Sim) Stop() error { return s.srv.Close() }

// SimSettingsOf are the simulator's settings for the results.
func SimSettingsOf(cfg llmsim.Config) *SimSettings {
	cfg = cfg.WithDefaults()
	ms := func(d time.Duration) float64 { return float64(max(d, 0)) / float64(time.Millisecond) }
	return &SimSettings{MaxNumSeqs: cfg.MaxNumSeqs, TTFTMs: ms(cfg.TTFT), TPOTMs: ms(cfg.TPOT)}
}
