package llmsim

import (
	"math/rand/v2"
	"unicode"
	"unicode/utf8"
)

// maxRunTokenRunes is how many letters or digits one token covers: a longer
// word counts as several tokens, as it would under a BPE tokenizer.
const maxRunTokenRunes = 8

// CountTokens is the simulator's tokenizer: every run of letters and digits
// counts one token per started 8 runes, every other non-space character one
// token, and white space nothing. Prompts, generated text and structured output
// are all counted with it, so usage numbers can be predicted from the text:
// a chat prompt counts 3 tokens plus, per message, 4 tokens and its content's
// text parts.
func CountTokens(text string) int {
	n, run := 0, 0
	for i := 0; i < len(text); {
		c := text[i]
		var r rune
		if c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(text[i:])
			i += size
		}
		switch {
		case isWordRune(r):
			if run%maxRunTokenRunes == 0 {
				n++
			}
			run++
		case isSpace(r):
			run = 0
		default:
			run = 0
			n++
		}
	}
	return n
}

// splitTokens cuts text into its tokens as CountTokens counts them, each piece
// carrying the white space before it, so the pieces concatenate back to the
// text. Streaming sends one piece per chunk.
func splitTokens(text string) []string {
	pieces := make([]string, 0, len(text)/4+1)
	// start is where the current piece begins; end is where its token ends
	// (-1 before the first token).
	start, end, run := 0, -1, 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		startsToken := false
		switch {
		case isWordRune(r):
			startsToken = run%maxRunTokenRunes == 0
			run++
		case isSpace(r):
			run = 0
		default:
			startsToken = true
			run = 0
		}
		if startsToken && end >= 0 {
			pieces = append(pieces, text[start:end])
			start = end
		}
		if !isSpace(r) {
			end = i + size
		}
		i += size
	}
	if end >= 0 {
		// Trailing white space rides with the last token.
		pieces = append(pieces, text[start:])
	}
	return pieces
}

// truncateTokens keeps the first n tokens of text.
func truncateTokens(text string, n int) string {
	pieces := splitTokens(text)
	if n >= len(pieces) {
		return text
	}
	size := 0
	for _, p := range pieces[:n] {
		size += len(p)
	}
	return text[:size]
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || r == '\n' || r == '\t' || r == '\r' || r == '\v' || r == '\f'
	}
	return unicode.IsSpace(r)
}

// The simulated model speaks in simple sentences built from these words.
// Every word is at most maxRunTokenRunes letters, so each is one token.
var (
	determiners = [...]string{"the", "each", "every", "this", "that", "some", "one", "our", "its", "their"}
	adjectives  = [...]string{"simple", "quick", "careful", "large", "small", "local", "remote", "steady", "clear", "exact", "new", "final", "whole", "hot", "cold", "next"}
	nouns       = [...]string{"model", "batch", "request", "answer", "result", "value", "system", "output", "input", "token", "queue", "server", "client", "file", "record", "field", "kiln", "glaze", "job", "task", "step", "plan", "worker", "report"}
	verbs       = [...]string{"reads", "writes", "returns", "holds", "checks", "builds", "sends", "fires", "shapes", "finds", "keeps", "needs", "takes", "makes", "starts", "ends"}
	preps       = [...]string{"of", "to", "in", "on", "with", "for", "from", "by", "after", "before"}
	conjs       = [...]string{"and", "but", "so", "while", "because", "when"}
	adverbs     = [...]string{"again", "now", "today", "soon", "first", "later", "quickly", "slowly"}
	closers     = [...]string{"all", "done"}
)

// vocabulary is every word the model says, for generated strings.
var vocabulary = func() []string {
	var all []string
	for _, list := range [][]string{determiners[:], adjectives[:], nouns[:], verbs[:], preps[:], conjs[:], adverbs[:], closers[:]} {
		all = append(all, list...)
	}
	return all
}()

// nextSentence replaces words with a new sentence: subject, verb, object,
// maybe a prepositional phrase and a second clause after a comma.
func nextSentence(words []string, rng *rand.Rand) []string {
	words = words[:0]
	nounPhrase := func() {
		words = append(words, determiners[rng.IntN(len(determiners))])
		if rng.IntN(3) == 0 {
			words = append(words, adjectives[rng.IntN(len(adjectives))])
		}
		words = append(words, nouns[rng.IntN(len(nouns))])
	}
	nounPhrase()
	words = append(words, verbs[rng.IntN(len(verbs))])
	nounPhrase()
	if rng.IntN(2) == 0 {
		words = append(words, preps[rng.IntN(len(preps))])
		nounPhrase()
	}
	if rng.IntN(3) == 0 {
		words = append(words, ",", conjs[rng.IntN(len(conjs))])
		nounPhrase()
		words = append(words, verbs[rng.IntN(len(verbs))])
		nounPhrase()
	}
	return words
}

// writeText appends the first limit tokens of a natural answer of natural
// tokens: whole sentences, each ending with a full stop. Cutting a longer
// answer short gives a prefix of it, as max_tokens does to a real model's
// output.
func writeText(buf []byte, rng *rand.Rand, natural, limit int) []byte {
	sentence := planSentence(make([]string, 0, 24), rng, natural-1)
	pos := 0
	for i := range min(natural, limit) {
		if pos == len(sentence) {
			buf = append(buf, '.')
			sentence = planSentence(sentence, rng, natural-i-2)
			pos = 0
			continue
		}
		w := sentence[pos]
		pos++
		if w == "," {
			buf = append(buf, ',')
			continue
		}
		if i > 0 {
			buf = append(buf, ' ')
		}
		if pos == 1 {
			buf = append(buf, w[0]-'a'+'A')
			w = w[1:]
		}
		buf = append(buf, w...)
	}
	return buf
}

// planSentence returns the next sentence for a budget of room tokens before
// the answer's final full stop. A sentence fills the room exactly or leaves
// space for at least one more, so the answer ends on a full stop.
func planSentence(words []string, rng *rand.Rand, room int) []string {
	switch {
	case room <= 1:
		return append(words[:0], "done")
	case room == 2:
		return append(words[:0], "all", "done")
	}
	for range 4 {
		words = nextSentence(words, rng)
		if n := len(words); n == room || n <= room-2 {
			return words
		}
	}
	words = append(words[:0], determiners[rng.IntN(len(determiners))])
	if room == 4 {
		words = append(words, adjectives[rng.IntN(len(adjectives))])
	}
	return append(words, nouns[rng.IntN(len(nouns))], verbs[rng.IntN(len(verbs))])
}

// Hashing: requests are identified by an FNV-1a hash of what they ask, so the
// same request always gets the same answer, across runs and machines.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

type requestHash uint64

func newRequestHash(seed int64, model string) requestHash {
	h := requestHash(fnvOffset)
	h.addUint64(uint64(seed))
	h.addString(model)
	return h
}

func (h *requestHash) addString(s string) {
	x := uint64(*h)
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= fnvPrime
	}
	// A terminator keeps ("ab","c") and ("a","bc") apart.
	x ^= 0xff
	x *= fnvPrime
	*h = requestHash(x)
}

func (h *requestHash) addUint64(v uint64) {
	x := uint64(*h)
	for range 8 {
		x ^= v & 0xff
		x *= fnvPrime
		v >>= 8
	}
	*h = requestHash(x)
}

// rng returns the random source for one output of the request: stream tells
// outputs of one request apart (choices, embedding inputs).
func (h requestHash) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix64(uint64(h)), mix64(uint64(h)^mix64(stream+1))))
}

// mix64 is SplitMix64's finaliser: it spreads every input bit over the output.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

const hexDigits = "0123456789abcdef"

// appendHex64 appends v as 16 lower-case hex digits.
func appendHex64(buf []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		buf = append(buf, hexDigits[(v>>uint(shift))&0xf])
	}
	return buf
}
