package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvPGBinDir names the folder that holds initdb and postgres, as for
// scripts/test-services.sh. Unset, the newest /usr/lib/postgresql/*/bin is
// used, else the PATH.
const EnvPGBinDir = "KILN_PG_BINDIR"

// Postgres is a throwaway PostgreSQL cluster owned by one test, which may
// stop, crash and restart it, unlike the shared server of PostgresURL.
// Its methods may be called from several goroutines.
type Postgres struct {
	bindir  string
	dir     string // holds data/ and log; owned by the user Postgres runs as
	port    int
	cred    *syscall.Credential // nil: run as ourselves
	logPath string

	mu   sync.Mutex
	proc *Process // nil while stopped
}

// StartPostgres initialises and starts a private Postgres cluster on a free
// loopback port, with trust authentication and fsync=off, which a server
// crash survives but a machine crash would not.
// It is stopped and removed at t.Cleanup. As root, it runs as the postgres
// user, which must be able to reach os.TempDir().
//
// It takes about half a second, mostly initdb; a restart about 0.1 s.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bindir, err := pgBinDir()
	if errors.Is(err, errNoPostgres) {
		Unavailable(t, fmt.Sprintf("testenv: this test runs its own Postgres, but %v. "+
			"Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or set %s to the folder that holds initdb and postgres.",
			err, EnvPGBinDir))
		return nil
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cred, err := pgCredential()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Not t.TempDir: its parent is private to root.
	dir, err := os.MkdirTemp("", "kiln-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove private Postgres: %v", err)
		}
	})
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	p := &Postgres{bindir: bindir, dir: dir, cred: cred, logPath: filepath.Join(dir, "log")}

	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", p.dataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	p.setup(initdb)
	if out, err := initdb.CombinedOutput(); err != nil {
		hint := ""
		if cred != nil {
			hint = fmt.Sprintf(" (it runs as the postgres user, which must be able to reach %s: chmod o+x each folder above it)", dir)
		}
		t.Fatalf("testenv: initdb%s: %v\n%s", hint, err, out)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: private Postgres log, last lines:%s", logTail(p.logPath, 0))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.proc != nil {
			// Immediate: the data goes next.
			if err := p.proc.stop(syscall.SIGQUIT, killWait); err != nil {
				t.Errorf("testenv: private Postgres: %v", err)
				_ = p.proc.kill()
			}
			p.proc = nil
		}
	})

	// Another process may take the port between our choosing it and
	// Postgres listening on it; then choose again.
	for attempt := 1; ; attempt++ {
		if p.port, err = freePort(); err != nil {
			t.Fatalf("testenv: find a free port: %v", err)
		}
		err = p.start()
		if err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("testenv: start private Postgres: %v", err)
		}
	}
}

// URL returns the URL of the cluster's postgres database as its superuser,
// which stays the same across restarts.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Stop shuts the server down cleanly ("fast" shutdown): it disconnects
// clients, rolling back their transactions, and writes a checkpoint.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.halt(t, syscall.SIGINT)
}

// Crash stops the server as a crash would ("immediate" shutdown): clients
// are cut off, open transactions are lost and the next Start runs crash
// recovery. Committed transactions survive, as only the processes die, not
// the machine.
func (p *Postgres) Crash(t testing.TB) {
	t.Helper()
	p.halt(t, syscall.SIGQUIT)
}

func (p *Postgres) halt(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		t.Fatalf("testenv: stop private Postgres: it is not running")
	}
	if err := p.proc.stop(sig, readyTimeout); err != nil {
		_ = p.proc.kill()
		p.proc = nil
		t.Fatalf("testenv: stop private Postgres: %v%s", err, logTail(p.logPath, 0))
	}
	p.proc = nil
}

// Start starts the stopped server again, on the same port and data, and
// waits until it accepts connections. It fails t if something else has
// taken the port meanwhile.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		t.Fatalf("testenv: start private Postgres: it is already running")
	}
	if err := p.start(); err != nil {
		t.Fatalf("testenv: start private Postgres again: %v", err)
	}
}

// Restart stops the server cleanly and starts it again.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.Stop(t)
	p.Start(t)
}

var errPortTaken = errors.New("port taken")

// start runs the server and waits until it accepts connections. The
// caller holds p.mu or owns p alone.
func (p *Postgres) start() error {
	addr := "127.0.0.1:" + strconv.Itoa(p.port)
	if err := portFree(p.port); err != nil {
		return fmt.Errorf("%w: cannot listen on %s: %v", errPortTaken, addr, err)
	}
	logStart := fileSize(p.logPath)
	log, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the server has its own descriptor
	cmd := exec.Command(filepath.Join(p.bindir, "postgres"),
		"-D", p.dataDir(),
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP only: socket paths are short
		// A process crash loses nothing the OS was given, so fsync
		// and full-page writes are waste. synchronous_commit stays on:
		// without it a commit returns before its WAL leaves Postgres's
		// memory, and Crash would lose it.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
	)
	p.setup(cmd)
	cmd.Stdout, cmd.Stderr = log, log
	// SIGQUIT: an immediate shutdown, so that no backend outlives it.
	proc, err := startProcess(cmd, syscall.SIGQUIT)
	if err != nil {
		return err
	}
	url := p.URL()
	err = proc.waitReady(readyTimeout, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		_ = proc.stop(syscall.SIGQUIT, killWait)
		_ = proc.kill()
		tail := logTail(p.logPath, logStart)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("%w: %s%s", errPortTaken, addr, tail)
		}
		return fmt.Errorf("on %s: %v%s", addr, err, tail)
	}
	p.proc = proc
	return nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }

// setup has cmd run as the user that owns the cluster, from a folder every
// user can read, as initdb and postgres fail in one they cannot.
func (p *Postgres) setup(cmd *exec.Cmd) {
	cmd.Dir = "/"
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
}

// pgBinDir returns the folder with initdb and postgres: EnvPGBinDir, else the
// newest /usr/lib/postgresql/*/bin, else the PATH's.
func pgBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvPGBinDir); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%s=%s holds no initdb and postgres", EnvPGBinDir, dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest first: versions compare as numbers (10 > 9.6).
	slices.SortFunc(dirs, func(a, b string) int { return -compareVersions(versionOf(a), versionOf(b)) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(path)) {
		return filepath.Dir(path), nil
	}
	return "", errNoPostgres
}

var errNoPostgres = errors.New("no PostgreSQL server programs (initdb, postgres) are installed")

// versionOf returns the version in /usr/lib/postgresql/VERSION/bin.
func versionOf(bindir string) string { return filepath.Base(filepath.Dir(bindir)) }

// compareVersions compares dotted versions number by number.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// pgCredential returns the user to run Postgres as: the postgres user when
// we are root, since Postgres refuses to run as root, else nil (ourselves).
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, a private Postgres runs as the postgres user, but: %v", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's uid %q: %v", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's gid %q: %v", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
