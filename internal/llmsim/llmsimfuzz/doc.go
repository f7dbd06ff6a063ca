// Package llmsimfuzz holds the fuzz test of kiln sim's JSON Schema generator.
//
// It is a package of its own, with nothing but the generator and the
// reference validator in its test binary, because Go's fuzzer copies and
// scans the coverage counters of the whole test binary on every run: in
// llmsim's own test binary, which links an HTTP server and the OpenAI
// client, that bookkeeping cost five times what a run does.
//
//	go test -run '^$' -fuzz '^FuzzSchemaOutput$' ./internal/llmsim/llmsimfuzz/
package llmsimfuzz
