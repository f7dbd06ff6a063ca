package faulttest_test

import (
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// leaseTTL is the agent's lease in these tests: short, so that an outage
// can outlast it.
const leaseTTL = 2 * time.Second

// service is a private server a test stops and starts: *testenv.Postgres
// or *testenv.MinIO.
type service interface {
	Stop(testing.TB)
	Crash(testing.TB)
	Start(testing.TB)
}

// outage is one way a service goes away and comes back.
type outage struct {
	name  string
	crash bool
	// length is how long the service stays down at least, beyond the
	// time for the agent to answer some requests: a property of the
	// fault, not a wait for kiln.
	length time.Duration
}

// outages are what each service goes through: a clean restart, brief; and
// a crash that outlasts the agent's lease, so that the agent can neither
// renew its lease nor commit its results before it expires.
var outages = []outage{
	{name: "Restart"},
	{name: "Crash", crash: true, length: leaseTTL + time.Second},
}

// TestPostgresOutage stops kiln's Postgres in the middle of a batch, cleanly
// and by a crash, and starts it again: the batch completes, every request
// exactly once.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.StartPostgres(t)
			testOutage(t, pg, o, func(cfg *config.Config) { cfg.DatabaseURL = pg.URL() })
		})
	}
}

// TestObjectStoreOutage stops kiln's S3 server (MinIO) in the middle of a
// batch, cleanly and by SIGKILL, and starts it again: the batch completes,
// every request exactly once.
func TestObjectStoreOutage(t *testing.T) {
	t.Parallel()
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			s3 := testenv.StartMinIO(t)
			testOutage(t, s3, o, func(cfg *config.Config) { cfg.ObjectStore = s3.URL() })
		})
	}
}

// outstandingAtFault is how many requests the agent has out at the engine
// when the service goes away, at least; they are answered while it is down.
const outstandingAtFault = 10

// testOutage runs a batch on a kiln (with its agent) that configure points
// at svc, takes svc down once some requests are done, keeps it down while
// the agent answers more requests, and brings it back.
func testOutage(t *testing.T, svc service, o outage, configure func(*config.Config)) {
	const n = 600
	env := kilntest.Start(t, "sqlite", kilntest.Options{Sim: slowSim(), Configure: func(cfg *config.Config) {
		cfg.ShardSize = 100
		cfg.AgentConcurrency = agentConcurrency
		cfg.LeaseTTL = leaseTTL
		configure(cfg)
	}})
	c := client(env)
	id := createBatch(t, c, n)
	waitProgress(t, c, id, 100)

	// The agent keeps running the requests it has sent while the service
	// is down. It may be between shards at any moment (a claim needs the
	// database), so the fault waits until it has requests out: those are
	// answered whatever the database does, and counted from then.
	var target int64
	poll(t, "requests out at the engine", func() (bool, error) {
		s := env.App.Sim.Stats()
		target = s.Completed + outstandingAtFault
		return s.Requests-s.Completed-s.Failed-s.Canceled >= outstandingAtFault, nil
	})
	if o.crash {
		svc.Crash(t)
	} else {
		svc.Stop(t)
	}
	over := time.After(o.length)
	poll(t, "answers while the service is down", func() (bool, error) { return env.App.Sim.Stats().Completed >= target, nil })
	<-over
	svc.Start(t)

	requireCompleted(t, c, waitBatch(t, c, id), n)
}
