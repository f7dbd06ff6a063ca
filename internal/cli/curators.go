package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/store"
)

type curatorsCmd struct {
	Create        curatorsCreateCmd        `cmd:"" help:"Make a curator key and print it once."`
	List          curatorsListCmd          `cmd:"" help:"List curators."`
	Revoke        curatorsRevokeCmd        `cmd:"" help:"Revoke a curator's key by ID; the key and its sessions stop working at once."`
	AddProject    curatorsAddProjectCmd    `cmd:"" name:"add-project" help:"Give a curator another project to work in (admins only may have several)."`
	RemoveProject curatorsRemoveProjectCmd `cmd:"" name:"remove-project" help:"Take a project from a curator; they keep one at least."`
}

type curatorsCreateCmd struct {
	dbFlags  `embed:""`
	Name     string   `required:"" help:"Who the curator is."`
	Role     string   `default:"curator" enum:"curator,admin" help:"curator or admin."`
	Projects []string `name:"project" help:"A project (name or ID) the curator works in; repeat it for an admin of several. Default: the default project."`
}

func (c *curatorsCreateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	var projects, names []string
	for _, ref := range c.Projects {
		p, err := findProject(e, st, ref)
		if err != nil {
			return err
		}
		projects, names = append(projects, p.ID), append(names, p.Name)
	}
	cur, secret, err := curation.CreateCurator(e.ctx, st, c.Name, c.Role, projects...)
	switch {
	case errors.Is(err, curation.ErrOneProject):
		return fmt.Errorf("a curator works in one project; only an admin (--role admin) works in several")
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("a project named is archived (kiln projects list shows them)")
	case err != nil:
		return err
	}
	if len(names) == 0 {
		names = []string{"the default project"}
	}
	fmt.Fprintf(e.stderr, "created curator %s (%s) in %s; the key below is shown only once: sign in to /curation/ with it\n",
		cur.ID, cur.Role, strings.Join(names, ", "))
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type curatorsAddProjectCmd struct {
	dbFlags `embed:""`
	ID      string `arg:"" help:"The curator's ID (cur_...), as curators list shows it."`
	Project string `arg:"" help:"The project's name or ID."`
}

func (c *curatorsAddProjectCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := findProject(e, st, c.Project)
	if err != nil {
		return err
	}
	err = curation.GiveProject(e.ctx, st, c.ID, p.ID)
	switch {
	case errors.Is(err, curation.ErrOneProject):
		return fmt.Errorf("curator %s works in another project already; only an admin works in several", c.ID)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no curator %s, or project %s is archived (kiln curators list, kiln projects list)", c.ID, p.Name)
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "curator %s works in %s (%s) too\n", c.ID, p.Name, p.ID)
	return nil
}

type curatorsRemoveProjectCmd struct {
	dbFlags `embed:""`
	ID      string `arg:"" help:"The curator's ID (cur_...), as curators list shows it."`
	Project string `arg:"" help:"The project's name or ID."`
}

func (c *curatorsRemoveProjectCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := findProject(e, st, c.Project)
	if err != nil {
		return err
	}
	err = st.CuratorProjectRemove(e.ctx, c.ID, p.ID)
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%s is the last project of curator %s: a curator keeps one (add another first, or revoke the key)", p.Name, c.ID)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("curator %s does not work in %s (kiln curators list shows their projects)", c.ID, p.Name)
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "curator %s no longer works in %s (%s)\n", c.ID, p.Name, p.ID)
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
	fmt.Fprintln(w, "ID\tNAME\tROLE\tKEY\tCREATED\tREVOKED\tPROJECTS")
	for _, k := range list {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = time.Unix(*k.RevokedAt, 0).UTC().Format(time.RFC3339)
		}
		projects, err := st.CuratorProjects(e.ctx, k.ID)
		if err != nil {
			return err
		}
		var names []string
		for _, p := range projects {
			names = append(names, p.Name)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.Prefix, time.Unix(k.CreatedAt, 0).UTC().Format(time.RFC3339), revoked,
			strings.Join(names, ", "))
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
