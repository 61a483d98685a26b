package suite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// scaleEngineProcs is the engine of a scale run: one redis-server, or the
// three masters of a Redis Cluster, and the herald serve flags naming it.
type scaleEngineProcs struct {
	procs []*process
	flags []string
}

func (e *scaleEngineProcs) pids() []int {
	var out []int
	for _, p := range e.procs {
		out = append(out, p.pid())
	}
	return out
}

func (e *scaleEngineProcs) stop() {
	for _, p := range e.procs {
		p.stop(3 * time.Second)
	}
}

// startEngine starts the engine with room for every node's subscriptions:
// each room with local members is a subscriber connection of its own on
// each node (1,000 rooms over 7 nodes: ~7,000 connections).
func (r *runner) startEngine(ctx context.Context, o ScaleOptions, engine string) (*scaleEngineProcs, error) {
	e := &scaleEngineProcs{}
	ok := false
	defer func() {
		if !ok {
			e.stop()
		}
	}()
	masters := 1
	if engine == EngineRedisCluster {
		masters = 3
	}
	dir, err := os.MkdirTemp("", "herald-scale-redis-")
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := 0; i < masters; i++ {
		p, port, err := r.startListening(ctx, fmt.Sprintf("scale-%s-%d-%d", engine, i, r.seq()), o.RedisBin, func(port int) ([]string, []string, error) {
			args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--maxclients", "19000", "--dir", dir}
			if engine == EngineRedisCluster {
				// A bus port picked free too (Redis's default, the
				// port + 10000, may be out of range or taken); a
				// failed bind of it says "Address already in use" too.
				bus, err := freePort()
				if err != nil {
					return nil, nil, err
				}
				args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
					"--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"), "--cluster-node-timeout", "5000")
			}
			return nil, args, nil
		})
		if err != nil {
			return nil, err
		}
		e.procs = append(e.procs, p)
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	if engine != EngineRedisCluster {
		e.flags = []string{"--redis-url", "redis://" + addrs[0] + "/0"}
		if engine == EngineRedisShared {
			e.flags = append(e.flags, "--redis-shared-rooms")
		}
		ok = true
		return e, nil
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, o.RedisCLI, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("suite: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		for {
			out, err := exec.CommandContext(cctx, o.RedisCLI, "-h", host, "-p", port, "CLUSTER", "INFO").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("suite: redis cluster at %s not ok after 30 s: %v %s", a, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	e.flags = []string{"--redis-cluster", strings.Join(addrs, ",")}
	ok = true
	return e, nil
}

// kernelMem is the machine's kernel memory for TCP sockets.
type kernelMem struct {
	sockstatBytes int64 // TCP "mem" of /proc/net/sockstat: pages of socket buffers
	tcpInUse      int64
	slabBytes     int64 // the slab caches a TCP socket and its descriptor take
}

// socketSlabs are the slab caches each TCP connection adds objects to:
// the socket, its inode, its file and dentry, and its epoll entries.
var socketSlabs = map[string]bool{
	"TCP": true, "sock_inode_cache": true, "filp": true, "dentry": true,
	"eventpoll_epi": true, "eventpoll_pwq": true,
}

// readKernelMem reads /proc/net/sockstat and /proc/slabinfo; what cannot
// be read stays 0. Both are machine-wide: other processes move them too.
func readKernelMem() kernelMem {
	var k kernelMem
	if f, err := os.Open("/proc/net/sockstat"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) == 0 || fs[0] != "TCP:" {
				continue
			}
			for i := 1; i+1 < len(fs); i += 2 {
				n, _ := strconv.ParseInt(fs[i+1], 10, 64)
				switch fs[i] {
				case "mem":
					k.sockstatBytes = n * int64(os.Getpagesize())
				case "inuse":
					k.tcpInUse = n
				}
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/slabinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// name active_objs num_objs objsize …
			if len(fs) < 4 || !socketSlabs[fs[0]] {
				continue
			}
			n, _ := strconv.ParseInt(fs[2], 10, 64)
			size, _ := strconv.ParseInt(fs[3], 10, 64)
			k.slabBytes += n * size
		}
		f.Close()
	}
	return k
}

func machineLine(ctx context.Context, redisBin string) string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s; %s; %s", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), mem,
		runtime.Version(), toolVersion(ctx, redisBin, "--version"))
}
