package batch

import (
	"context"

	"github.com/kilnhq/kiln/internal/auth"
)

// Projects: every batch, file and upload belongs to the project of the
// request that made it (auth.Project; the default project for kiln's own
// work, such as the inbox), and a request sees only its project's
// (auth.Sees).

func visible(ctx context.Context, project string) bool { return auth.Sees(ctx, project) }
