package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/store"
)

type curatorsCmd struct {
	Create curatorsCreateCmd `cmd:"" help:"Make a curator key and print it once."`
	List   curatorsListCmd   `cmd:"" help:"List curators."`
	Revoke curatorsRevokeCmd `cmd:"" help:"Revoke a curator's key by ID; the key and its sessions stop working at once."`
}

type curatorsCreateCmd struct {
	dbFlags `embed:""`
	Name    string `required:"" help:"Who the curator is."`
	Role    string `default:"curator" enum:"curator,admin" help:"curator or admin."`
}

func (c *curatorsCreateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, secret, err := curation.CreateCurator(e.ctx, st, c.Name, c.Role)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "created curator %s (%s); the key below is shown only once: sign in to /curation/ with it\n", cur.ID, cur.Role)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type curatorsListCmd struct {
	dbFlags `embed:""`
}

func (c *curatorsListCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.CuratorList(e.ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tROLE\tKEY\tCREATED\tREVOKED")
	for _, k := range list {
		revoked := ""
		if k.RevokedAt != nil {
			revoked = time.Unix(*k.RevokedAt, 0).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s…\t%s\t%s\n", k.ID, k.Name, k.Role, k.Prefix, time.Unix(k.CreatedAt, 0).UTC().Format(time.RFC3339), revoked)
	}
	return w.Flush()
}

type curatorsRevokeCmd struct {
	dbFlags `embed:""`
	ID      string `arg:"" help:"The curator's ID (cur_...), as curators list shows it."`
}

func (c *curatorsRevokeCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, err := st.CuratorRevoke(e.ctx, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no curator %s (kiln curators list shows them)", c.ID)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("curator %s is revoked already", c.ID)
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "revoked curator %s (%s); their key and sessions no longer work\n", cur.ID, cur.Name)
	return nil
}
