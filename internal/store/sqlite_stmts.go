package store

import (
	"container/list"
	"context"
	sqldriver "database/sql/driver"
	"fmt"
	"strings"
	"sync"
)

// sqliteStmtCacheSize bounds the prepared statements each SQLite connection
// keeps: more than kiln's hot statements (claims, commits, deliveries,
// River's fetch), few enough that their memory stays small.
const sqliteStmtCacheSize = 64

// stmtCacheConnector makes connections that keep their prepared statements
// (stmtCacheConn).
type stmtCacheConnector struct {
	inner sqldriver.Connector
	size  int
}

func (c stmtCacheConnector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newStmtCacheConn(conn, c.size)
}

func (c stmtCacheConnector) Driver() sqldriver.Driver { return c.inner.Driver() }

// sqliteConn is what stmtCacheConn needs of the connection it wraps, and
// passes on: modernc.org/sqlite's connection has all of it.
type sqliteConn interface {
	sqldriver.Conn
	sqldriver.ConnBeginTx
	sqldriver.ConnPrepareContext
	sqldriver.ExecerContext
	sqldriver.QueryerContext
	sqldriver.Pinger
	sqldriver.SessionResetter
	sqldriver.Validator
}

// stmtCacheConn is a SQLite connection that keeps the statements it runs
// prepared, by their text, the sqliteStmtCacheSize most recently used: a
// statement run again skips SQLite's parse and plan, which took as much
// CPU as running it for kiln's short statements (a sixth of a webhook
// sender's CPU). database/sql prepares each statement anew on every
// QueryContext and ExecContext, on a pool or in a transaction, and caches
// only what the caller prepares itself. A statement whose rows are still
// open when its text runs again (a query inside another's loop) runs as a
// one-shot statement instead; a text of several statements is never kept.
// database/sql never uses a connection from two goroutines at once, so
// the cache needs no lock of its own; mu guards it all the same, cheaply,
// should a driver method ever run beside a Rows' Close.
type stmtCacheConn struct {
	sqliteConn
	mu    sync.Mutex
	size  int
	lru   list.List // of *cachedStmt, the most recently used first
	stmts map[string]*list.Element
}

// cachedStmt is a prepared statement; busy while rows of it are open.
type cachedStmt struct {
	query string
	st    sqldriver.Stmt
	busy  bool
}

func newStmtCacheConn(conn sqldriver.Conn, size int) (sqldriver.Conn, error) {
	sc, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("store: the SQLite driver's connection (%T) lacks a method kiln uses", conn)
	}
	return &stmtCacheConn{sqliteConn: sc, size: size, stmts: map[string]*list.Element{}}, nil
}

// cacheable reports whether query is one statement: a script is prepared
// anew on each run however it is held.
func cacheable(query string) bool {
	return !strings.Contains(strings.TrimRight(query, "; \t\r\n"), ";")
}

// take returns query's prepared statement, marked busy, preparing it if
// need be; nil when it is a script, its statement is busy, or it does not
// prepare (the one-shot run then reports why).
func (c *stmtCacheConn) take(ctx context.Context, query string) *cachedStmt {
	if !cacheable(query) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.stmts[query]; ok {
		s := e.Value.(*cachedStmt)
		if s.busy {
			return nil
		}
		c.lru.MoveToFront(e)
		s.busy = true
		return s
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	s := &cachedStmt{query: query, st: st, busy: true}
	c.stmts[query] = c.lru.PushFront(s)
	// Drop the least recently used statements beyond the bound; one whose
	// rows are open is closed when they are.
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.size; {
		prev := e.Prev()
		if old := e.Value.(*cachedStmt); !old.busy {
			c.lru.Remove(e)
			delete(c.stmts, old.query)
			_ = old.st.Close()
		}
		e = prev
	}
	return s
}

// release marks s free again, or closes it if it was dropped meanwhile.
func (c *stmtCacheConn) release(s *cachedStmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.busy = false
	if e, ok := c.stmts[s.query]; !ok || e.Value != s {
		_ = s.st.Close()
	}
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	s := c.take(ctx, query)
	if s == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	defer c.release(s)
	return s.st.(sqldriver.StmtExecContext).ExecContext(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	s := c.take(ctx, query)
	if s == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := s.st.(sqldriver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(s)
		return nil, err
	}
	return &cachedRows{Rows: rows, release: func() { c.release(s) }}, nil
}

// Close closes the kept statements, then the connection.
func (c *stmtCacheConn) Close() error {
	c.mu.Lock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		_ = e.Value.(*cachedStmt).st.Close()
	}
	c.lru.Init()
	clear(c.stmts)
	c.mu.Unlock()
	return c.sqliteConn.Close()
}

// cachedRows are the rows of a kept statement, which Close frees for its
// next run (the driver resets it).
type cachedRows struct {
	sqldriver.Rows
	once    sync.Once
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
