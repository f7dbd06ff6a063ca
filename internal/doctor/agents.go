package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/store"
)

// Heartbeat ages of an agent: within AgentFresh it beats as it should (it
// beats every gpuagent.HeartbeatIntervalDefault); past AgentLive, kiln
// counts it dead, as GET /v1/agents does. Agents seen within AgentRecent are
// listed, so that one that died lately shows.
const (
	AgentFresh  = 5 * gpuagent.HeartbeatIntervalDefault
	AgentLive   = 60 * time.Second
	AgentRecent = time.Hour
)

// agents reports each agent seen lately by its heartbeat's age.
func (d *doctor) agents(ctx context.Context, st *store.Store) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	now := time.Now()
	list, err := st.AgentList(ctx, now.Add(-AgentRecent).Unix())
	if err != nil {
		d.add("agents", Fail, "list: %v", err)
		return
	}
	live := 0
	for _, a := range list {
		age := now.Sub(time.Unix(a.HeartbeatAt, 0)).Truncate(time.Second)
		s, detail := agentStatus(a, age)
		if age <= AgentLive {
			live++
		}
		d.add("agent "+a.ID, s, "%s", detail)
	}
	if live == 0 {
		d.add("agents", Warn, "no live agent: batches wait until one runs (kiln serve runs one on SQLite; else kiln agent)")
		return
	}
	d.add("agents", OK, "%d live", live)
}

// agentStatus judges an agent by the age of its last heartbeat.
func agentStatus(a store.Agent, age time.Duration) (Status, string) {
	what := fmt.Sprintf("on %s, %s", a.Hostname, strings.Join(a.Models, ", "))
	if a.LoadedModel != "" {
		what += fmt.Sprintf("; %s %s", a.State, a.LoadedModel)
	}
	if a.Synthetic {
		what += " (simulator)"
	}
	switch {
	case age > AgentLive:
		return Warn, fmt.Sprintf("no heartbeat for %s: gone (its shards went back to the queue); %s", age, what)
	case age > AgentFresh:
		return Warn, fmt.Sprintf("last heartbeat %s ago, late (it beats every %s; or its clock is off); %s", age, gpuagent.HeartbeatIntervalDefault, what)
	}
	return OK, fmt.Sprintf("heartbeat %s ago; %s", age, what)
}
