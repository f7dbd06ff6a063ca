// Package conquestfuzz holds the fuzz tests of conquest's output checks and
// request building.
//
// They are a package of their own, away from conquest's round-trip tests,
// which start a whole kiln: Go's fuzzer copies and scans the coverage
// counters of the whole test binary on every run, and in a binary that
// links all of kiln that bookkeeping cost far more than the runs.
//
//	go test -run '^$' -fuzz '^FuzzRender$' ./conquest_schemas/conquest/conquestfuzz/
package conquestfuzz
