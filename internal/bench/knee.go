package bench

import "math"

// Knee finds the knee of a throughput curve: the smallest concurrency past
// which doubling the concurrency gains less than gain (0.10: 10 %) in output
// throughput. Precisely, with the points in ascending concurrency, the knee
// is the first point i such that every later point j stays below
//
//	T(i) × (1 + gain) ^ log2(c(j) / c(i))
//
// that is, no later point beats point i by gain per doubling; comparing with
// every later point, not just the next, keeps a dip in a noisy curve from
// passing for the knee. saturated is false when no point qualifies (the
// curve still climbs at the end of the sweep: sweep further); the knee is
// then the last point's concurrency. An engine that runs at most N requests
// at once (vLLM's max_num_seqs) has its knee at N when N is in the sweep.
func Knee(points []Point, gain float64) (knee int, saturated bool) {
	if len(points) == 0 {
		return 0, false
	}
	for i, p := range points {
		flat := true
		for _, q := range points[i+1:] {
			doublings := math.Log2(float64(q.Concurrency) / float64(p.Concurrency))
			if q.OutputTokensPerSecond >= p.OutputTokensPerSecond*math.Pow(1+gain, doublings) {
				flat = false
				break
			}
		}
		if flat && i < len(points)-1 {
			return p.Concurrency, true
		}
	}
	return points[len(points)-1].Concurrency, false
}

// Best is the concurrency of the highest output throughput (the first, on
// a tie).
func Best(points []Point) int {
	best := Point{}
	for _, p := range points {
		if p.OutputTokensPerSecond > best.OutputTokensPerSecond {
			best = p
		}
	}
	return best.Concurrency
}
