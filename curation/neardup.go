package curation

import (
	"context"
	"math/bits"
	"strings"
	"unicode"

	"github.com/kilnhq/kiln/internal/store"
)

// Near-duplicate inputs within a conquest type, by SimHash (Charikar): a
// task's input is normalised (lower case, punctuation folded to spaces,
// the prompt's headings and system messages left out, since every task of
// a type shares them), cut into overlapping shingles of shingleWords
// words, each hashed with 64-bit FNV-1a; bit i of the fingerprint is set
// when more shingles have bit i set than not. Two inputs are near
// duplicates when their fingerprints differ in at most NearDupThreshold
// bits. Fingerprints are computed lazily, when a list of tasks or an
// export with dedupe asks, and kept (curation_neardups): a task joins the
// cluster of the first fingerprinted task of its type it is near, else
// starts its own.

// NearDupThreshold is the most bits in which the SimHashes of two near
// duplicate inputs differ, of 64. At 3 shingle words, inputs of a few
// dozen words that differ in a word, in case, spacing or punctuation are
// within it; unrelated inputs differ in about 32 bits.
const NearDupThreshold = 6

// shingleWords is how many words one shingle holds.
const shingleWords = 3

// normalWords are the words of s, lower-cased, with everything that is no
// letter or digit taken as a space.
func normalWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// SimHash is the 64-bit SimHash of text's word shingles; 0 for a text
// without a word.
func SimHash(text string) uint64 {
	words := normalWords(text)
	if len(words) == 0 {
		return 0
	}
	var counts [64]int
	n := max(1, len(words)-shingleWords+1)
	for i := range n {
		// FNV-1a over the shingle's words, each followed by a space.
		v := uint64(14695981039346656037)
		for j := i; j < min(i+shingleWords, len(words)); j++ {
			for k := 0; k < len(words[j]); k++ {
				v = (v ^ uint64(words[j][k])) * 1099511628211
			}
			v = (v ^ ' ') * 1099511628211
		}
		for b := range 64 {
			counts[b] += int(v>>b&1)*2 - 1
		}
	}
	var out uint64
	for b, c := range counts {
		if c > 0 {
			out |= 1 << b
		}
	}
	return out
}

// NearDuplicate reports whether two fingerprints are within
// NearDupThreshold bits.
func NearDuplicate(a, b uint64) bool { return bits.OnesCount64(a^b) <= NearDupThreshold }

// fingerprintText is what a task's fingerprint is computed from: its
// messages but the system ones, without heading lines (a conquest type's
// "# Task: …" header) or its type's description.
func fingerprintText(t store.CurationTask) string {
	var b strings.Builder
	for _, m := range messagesOf(t) {
		if m.Role == "system" {
			continue
		}
		s, _ := m.Content.(string)
		for line := range strings.Lines(s) {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// nearDupIndex finds, among the fingerprints of one type, one within the
// threshold of a new one. By the pigeonhole principle two fingerprints
// within k bits agree on at least one of k+1 bands of bits, so a
// fingerprint is compared only with those that share a band with it.
type nearDupIndex struct {
	bands    []map[uint64][]int32
	hashes   []uint64
	clusters []string
}

// bandsOf are the NearDupThreshold+1 bands of h, each tagged with its
// index so that a key says which band it is.
func bandsOf(h uint64) []uint64 {
	const n = NearDupThreshold + 1
	out := make([]uint64, n)
	for i := range n {
		lo, hi := i*64/n, (i+1)*64/n
		out[i] = (h >> lo) & (1<<(hi-lo) - 1)
	}
	return out
}

func newNearDupIndex() *nearDupIndex {
	x := &nearDupIndex{bands: make([]map[uint64][]int32, NearDupThreshold+1)}
	for i := range x.bands {
		x.bands[i] = map[uint64][]int32{}
	}
	return x
}

// cluster returns the cluster of the first indexed fingerprint near h, or
// "" when none is.
func (x *nearDupIndex) cluster(h uint64) string {
	best := int32(-1)
	for i, key := range bandsOf(h) {
		for _, j := range x.bands[i][key] {
			if (best < 0 || j < best) && NearDuplicate(h, x.hashes[j]) {
				best = j
			}
		}
	}
	if best < 0 {
		return ""
	}
	return x.clusters[best]
}

func (x *nearDupIndex) add(h uint64, cluster string) {
	j := int32(len(x.hashes))
	x.hashes = append(x.hashes, h)
	x.clusters = append(x.clusters, cluster)
	for i, key := range bandsOf(h) {
		x.bands[i][key] = append(x.bands[i][key], j)
	}
}

// assign gives each task (in order) its cluster: the one of the first
// earlier task it is near, else its own.
func (x *nearDupIndex) assign(taskID string, h uint64) string {
	c := x.cluster(h)
	if c == "" {
		c = taskID
	}
	x.add(h, c)
	return c
}

// ClusterNearDups clusters fingerprints, in order, as the store keeps
// them: each task's cluster is the first earlier task it is near, else
// itself. It returns the cluster of each.
func ClusterNearDups(taskIDs []string, hashes []uint64) []string {
	x := newNearDupIndex()
	out := make([]string, len(taskIDs))
	for i, id := range taskIDs {
		out[i] = x.assign(id, hashes[i])
	}
	return out
}

// nearDupScanPage is how many tasks one pass fingerprints.
const nearDupScanPage = 2000

// refreshNearDups fingerprints and clusters the project's tasks of typ (""
// every type) that have no fingerprint yet, in ID order, paging on from the
// last task it read so that the tasks are read once.
func refreshNearDups(ctx context.Context, st *store.Store, project, typ string) error {
	indexes := map[string]*nearDupIndex{}
	after := ""
	for {
		tasks, err := st.NearDupUnscanned(ctx, project, typ, after, nearDupScanPage)
		if err != nil || len(tasks) == 0 {
			return err
		}
		after = tasks[len(tasks)-1].ID
		rows := make([]store.NearDup, len(tasks))
		for i, t := range tasks {
			x := indexes[t.ConquestType]
			if x == nil {
				x = newNearDupIndex()
				known, err := st.NearDupList(ctx, project, t.ConquestType, nil)
				if err != nil {
					return err
				}
				for _, n := range known {
					x.add(n.SimHash, n.ClusterID)
				}
				indexes[t.ConquestType] = x
			}
			h := SimHash(fingerprintText(t))
			rows[i] = store.NearDup{TaskID: t.ID, ProjectID: project, ConquestType: t.ConquestType, SimHash: h, ClusterID: x.assign(t.ID, h)}
		}
		if err := st.NearDupPut(ctx, rows); err != nil {
			return err
		}
	}
}

// nearDupOf maps each of ids that is a near duplicate of an earlier task
// to that cluster's first task, and says whether each of ids has its
// fingerprint.
func nearDupOf(ctx context.Context, st *store.Store, project string, ids []string) (map[string]string, bool, error) {
	list, err := st.NearDupList(ctx, project, "", ids)
	if err != nil {
		return nil, false, err
	}
	out := map[string]string{}
	for _, n := range list {
		if n.ClusterID != n.TaskID {
			out[n.TaskID] = n.ClusterID
		}
	}
	return out, len(list) == len(ids), nil
}

// duplicates are the tasks an export with dedupe leaves out: all of each
// cluster but its first.
func duplicates(ctx context.Context, st *store.Store, project string, o ExportOptions) (map[string]bool, error) {
	if !o.Dedupe {
		return nil, nil
	}
	if err := refreshNearDups(ctx, st, project, o.Type); err != nil {
		return nil, err
	}
	list, err := st.NearDupList(ctx, project, o.Type, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range list {
		if n.ClusterID != n.TaskID {
			out[n.TaskID] = true
		}
	}
	return out, nil
}

// withNearDups marks the near duplicates of a page of tasks. When one of
// them has no fingerprint yet (tasks imported since), it first fingerprints
// the project's tasks of typ ("" every type) that have none: a page whose
// tasks all have theirs costs one look-up of its IDs, not a walk of every
// task.
func (d Deps) withNearDups(ctx context.Context, typ string, list []TaskSummary) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, len(list))
	for i, t := range list {
		ids[i] = t.ID
	}
	of, all, err := nearDupOf(ctx, d.Store, projectOf(ctx), ids)
	if err == nil && !all {
		if err = refreshNearDups(ctx, d.Store, projectOf(ctx), typ); err == nil {
			of, _, err = nearDupOf(ctx, d.Store, projectOf(ctx), ids)
		}
	}
	if err != nil {
		return err
	}
	for i := range list {
		if c, ok := of[list[i].ID]; ok {
			list[i].NearDuplicateOf = &c
		}
	}
	return nil
}
