package suite

import "testing"

func TestClusterProcs(t *testing.T) {
	for _, tc := range []struct {
		procs, nodes, cpus, want int
	}{
		{0, 3, 2, 1},  // two cores over three nodes: one each
		{0, 2, 8, 4},  // each node its share
		{0, 3, 16, 5}, // rounded down
		{0, 0, 4, 4},  // no nodes configured: not a division by zero
		{-1, 3, 2, 0}, // Go's default
		{3, 3, 2, 3},  // as asked
	} {
		o := Options{ClusterProcs: tc.procs, ClusterNodes: tc.nodes}
		if got := o.clusterProcs(tc.cpus); got != tc.want {
			t.Errorf("ClusterProcs %d, %d nodes, %d CPUs: got %d, want %d", tc.procs, tc.nodes, tc.cpus, got, tc.want)
		}
	}
	o := Defaults()
	o.ClusterProcs = -2
	if err := o.validate(); err == nil {
		t.Error("ClusterProcs -2 was accepted")
	}
}
