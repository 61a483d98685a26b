package testserver

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RedisCluster is a three-master Redis Cluster without replicas owned by a
// test.
type RedisCluster struct {
	nodes []*Redis
}

// StartRedisCluster starts three cluster-enabled redis-server processes
// (node configs under t.TempDir()), joins them with redis-cli --cluster
// create and waits until every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	cli := lookBinary(t, "redis-cli")
	dir := t.TempDir()
	c := &RedisCluster{}
	for range 3 {
		r := startRedis(t, func() int { return freePort(t) }, func(port int) []string {
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
				"--cluster-port", strconv.Itoa(freePort(t)), // taken too: another port for both
				"--cluster-node-timeout", "2000",
			}
		})
		c.nodes = append(c.nodes, r)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testserver: redis-cli --cluster create: %v\n%s", err, out)
	}
	err := waitFor(startTimeout, func() error {
		for _, n := range c.nodes {
			info, err := command(n.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("testserver: %s: cluster not ok yet", n.Addr())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Addrs returns the host:port of every master.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the masters, for tests that kill one.
func (c *RedisCluster) Nodes() []*Redis { return c.nodes }
