package cli

import (
	"errors"
	"fmt"
	"os/user"
	"text/tabwriter"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/store"
)

// adminCmd is kiln admin-keys: it manages the admin keys of the
// Administration API (/v1/organization/...).
type adminCmd struct {
	Create adminKeysCreateCmd `cmd:"" help:"Make an admin key and print its secret once."`
	List   adminKeysListCmd   `cmd:"" help:"List admin keys."`
	Revoke adminKeysRevokeCmd `cmd:"" help:"Revoke an admin key by ID; it stops working at once."`
}

type adminKeysCreateCmd struct {
	dbFlags `embed:""`
	Name    string `default:"" help:"A name to tell the key apart."`
}

func (c *adminKeysCreateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	k, secret, err := apikey.NewAdmin(e.ctx, st, c.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "created admin key %s; it opens /v1/organization/... only; the secret below is shown only once\n", k.ID)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type adminKeysListCmd struct {
	dbFlags `embed:""`
}

func (c *adminKeysListCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.AdminKeyList(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tCREATED\tLAST USED\tSTATUS")
	for _, k := range keys {
		status := "active"
		if k.RevokedAt != nil {
			status = "revoked " + unix(*k.RevokedAt)
		}
		used := "never"
		if k.LastUsedAt != nil {
			used = unix(*k.LastUsedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, unix(k.CreatedAt), used, status)
	}
	return tw.Flush()
}

type adminKeysRevokeCmd struct {
	dbFlags `embed:""`
	ID      string `arg:"" help:"The admin key's ID (key_admin_...)."`
}

func (c *adminKeysRevokeCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.AdminKeyRevoke(e.ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no live admin key %s (kiln admin-keys list shows them)", c.ID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked admin key %s; it stops working at once\n", c.ID)
	return nil
}

// cliActor is who the command line acts for in the audit log: the system
// user that runs it.
func cliActor() store.Actor {
	name := "kiln"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return store.Actor{Type: store.ActorCLI, ID: name}
}
