// Command figures regenerates benchmarks/README.md (make bench): it finds
// every func BenchmarkXxx in the repository's tests, runs the cheap ones (all
// of them with -all, which needs make test's Postgres and MinIO: run it under
// scripts/test-services.sh), and rewrites the table with each benchmark's
// doc, command and latest figures, keeping the figures of those not run.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// cheap are the benchmarks make bench runs: seconds each, on no services.
var cheap = map[string]bool{
	"BenchmarkChatCompletion": true,
	"BenchmarkGenerateJSON":   true,
	"BenchmarkCheckCVParsing": true,
	"BenchmarkValidate":       true,
}

// docBenchtime finds the -benchtime a benchmark's doc runs it with (1x
// where one iteration is a whole measured run).
var docBenchtime = regexp.MustCompile(`-benchtime (\d+x)`)

// cpuSuffix is go test's -GOMAXPROCS suffix of a result's name.
var cpuSuffix = regexp.MustCompile(`-\d+$`)

type benchmark struct {
	name, pkg, doc, benchtime string
	figures                   string
}

const (
	tableStart = "<!-- figures:start -->"
	tableEnd   = "<!-- figures:end -->"
)

func main() {
	readme := flag.String("readme", "benchmarks/README.md", "the README to rewrite")
	all := flag.Bool("all", false, "run every benchmark, not only the cheap ones (needs Postgres and MinIO)")
	flag.Parse()
	log.SetFlags(0)

	bs, err := find(".")
	if err != nil {
		log.Fatal(err)
	}
	old := previous(*readme)
	today := time.Now().Format(time.DateOnly)
	for i := range bs {
		b := &bs[i]
		b.figures = old[b.name]
		if b.figures == "" {
			b.figures = "not yet measured"
		}
		if !*all && !cheap[b.name] {
			continue
		}
		log.Printf("running %s (%s)", b.name, b.pkg)
		figs, err := run(*b)
		if err != nil {
			log.Printf("%s: %v", b.name, err)
			continue
		}
		b.figures = figs + " (" + today + ")"
	}
	if err := write(*readme, bs); err != nil {
		log.Fatal(err)
	}
}

var benchFunc = regexp.MustCompile(`^func (Benchmark\w+)\(b \*testing\.B\)`)

// find lists every benchmark under root, with its doc comment's first
// sentence, sorted by package and name.
func find(root string) ([]benchmark, error) {
	var out []benchmark
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "data" || d.Name() == "artifacts") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(string(src), "\n")
		for i, line := range lines {
			m := benchFunc.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			var doc []string
			for j := i - 1; j >= 0 && strings.HasPrefix(lines[j], "//"); j-- {
				doc = append([]string{strings.TrimSpace(strings.TrimPrefix(lines[j], "//"))}, doc...)
			}
			text := strings.Join(doc, " ")
			b := benchmark{name: m[1], pkg: "./" + filepath.ToSlash(filepath.Dir(path)), doc: firstSentence(strings.TrimPrefix(text, m[1]+" "))}
			if bt := docBenchtime.FindStringSubmatch(text); bt != nil {
				b.benchtime = bt[1]
			}
			out = append(out, b)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b benchmark) int { return strings.Compare(a.pkg+" "+a.name, b.pkg+" "+b.name) })
	return out, err
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

func (b benchmark) command() string {
	c := fmt.Sprintf("go test -run '^$' -bench '^%s$'", b.name)
	if b.benchtime != "" {
		c += " -benchtime " + b.benchtime
	}
	return c + " " + b.pkg
}

// run runs b and returns its result lines, compacted: each (sub-)benchmark's
// metrics.
func run(b benchmark) (string, error) {
	args := []string{"test", "-run", "^$", "-bench", "^" + b.name + "$", "-count", "1"}
	if b.benchtime != "" {
		args = append(args, "-benchtime", b.benchtime)
	}
	cmd := exec.Command("go", append(args, b.pkg)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, out.String())
	}
	var figs []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], b.name) {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(f[0], b.name), "/")
		name = cpuSuffix.ReplaceAllString(name, "")
		metrics := strings.Join(f[2:], " ")
		if name != "" {
			metrics = name + ": " + metrics
		}
		figs = append(figs, metrics)
	}
	if len(figs) == 0 {
		return "", fmt.Errorf("no results in\n%s", out.String())
	}
	return strings.Join(figs, "<br>"), nil
}

// previous reads the figures column of the README's table, by benchmark.
func previous(path string) map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(data)) {
		cells := strings.Split(strings.TrimSpace(line), " | ")
		if len(cells) == 5 && strings.HasPrefix(cells[0], "| `Benchmark") {
			out[strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")] = strings.TrimSuffix(cells[4], " |")
		}
	}
	return out
}

// write replaces the table between the markers, or writes a README with
// only the table when there is none.
func write(path string, bs []benchmark) error {
	var t strings.Builder
	t.WriteString(tableStart + "\n")
	t.WriteString("| benchmark | package | what it measures | command | latest figures |\n|---|---|---|---|---|\n")
	for _, b := range bs {
		fmt.Fprintf(&t, "| `%s` | `%s` | %s | `%s` | %s |\n", b.name, b.pkg, b.doc, b.command(), b.figures)
	}
	t.WriteString(tableEnd)
	data, err := os.ReadFile(path)
	if err != nil {
		data = []byte("# Benchmarks\n\n" + tableStart + "\n" + tableEnd + "\n")
	}
	s := string(data)
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s markers", path, tableStart, tableEnd)
	}
	s = s[:i] + t.String() + s[j+len(tableEnd):]
	return os.WriteFile(path, []byte(s), 0o644)
}
