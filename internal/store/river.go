package store

import (
	"riverqueue.com/riverui"
	"riverqueue.com/riverui/uiendpoints"
)

// RiverUIEndpoints are the River UI's API endpoints on the store's queue,
// for riverui.NewHandler: River UI lists, retries and cancels the jobs of
// this database, on either backend (riverui reads riverpgxv5 and
// riversqlite alike). The endpoints use the store's insert-only River
// client, which works no jobs itself.
func (s *Store) RiverUIEndpoints() uiendpoints.Bundle { return s.d.riverUIEndpoints() }

func (d *pgDriver) riverUIEndpoints() uiendpoints.Bundle {
	return riverui.NewEndpoints(d.inserter, nil)
}

func (d *sqliteDriver) riverUIEndpoints() uiendpoints.Bundle {
	return riverui.NewEndpoints(d.inserter, nil)
}
