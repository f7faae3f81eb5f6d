package supervisor

import (
	"testing"
	"time"
)

// BenchmarkHostDeath is the containment figure: SIGKILL of a host with two
// lanes and a spare, to the last of its workers gone (they die by
// PR_SET_PDEATHSIG, which their sandbox forbids them to clear). Ten host
// kills per iteration; ns-p50/p99/max over all of them.
func BenchmarkHostDeath(b *testing.B) {
	var lat []time.Duration
	for i := 0; i < b.N*10; i++ {
		d, left := hostDeath(b, 10*time.Second)
		if len(left) != 0 {
			b.Fatalf("workers %v still running 10 s after their host was killed", left)
		}
		lat = append(lat, d)
	}
	reportPercentiles(b, lat)
}
