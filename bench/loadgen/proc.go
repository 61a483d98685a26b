package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcRSS returns the resident set size of process pid in bytes
// (VmRSS of /proc/<pid>/status).
func ProcRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("loadgen: no VmRSS for pid %d", pid)
}

// ProcCPU returns the CPU time (user + system) process pid has used.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: malformed stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: short stat %q", b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: bad utime/stime in %q", b)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// SumCPU returns the total CPU time of pids; processes that have gone are
// skipped.
func SumCPU(pids []int) time.Duration {
	var d time.Duration
	for _, p := range pids {
		if c, err := ProcCPU(p); err == nil {
			d += c
		}
	}
	return d
}

// SumRSS returns the total RSS of pids in bytes.
func SumRSS(pids []int) int64 {
	var n int64
	for _, p := range pids {
		if r, err := ProcRSS(p); err == nil {
			n += r
		}
	}
	return n
}

// ScrapeMetric fetches a Prometheus text exposition from url and returns
// the value of the first sample of the metric named name.
func ScrapeMetric(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return findMetric(bufio.NewScanner(resp.Body), name)
}

func findMetric(sc *bufio.Scanner, name string) (float64, error) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("loadgen: metric %s not found", name)
}

// MachineCPU is the machine's CPU time, from the first line of
// /proc/stat, in clock ticks: busy (user, nice, system, irq, softirq,
// steal) and in all (idle and iowait too).
type MachineCPU struct {
	Busy, Total int64
	CPUs        int
}

// ReadMachineCPU reads /proc/stat; the zero value where it cannot.
func ReadMachineCPU() MachineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}
	}
	return parseMachineCPU(string(b))
}

// parseMachineCPU parses the text of /proc/stat: the "cpu" line's
// fields user nice system idle iowait irq softirq steal (guest time is
// already in user), and the "cpuN" lines counted as CPUs.
func parseMachineCPU(stat string) MachineCPU {
	var m MachineCPU
	for i, line := range strings.Split(stat, "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 || !strings.HasPrefix(fs[0], "cpu") {
			continue
		}
		if fs[0] != "cpu" {
			m.CPUs++
			continue
		}
		if i != 0 || len(fs) < 5 {
			return MachineCPU{}
		}
		for j, f := range fs[1:min(len(fs), 9)] {
			n, _ := strconv.ParseInt(f, 10, 64)
			m.Total += n
			if j != 3 && j != 4 {
				m.Busy += n
			}
		}
	}
	return m
}

// BusySince is the machine's busy CPU between m0 and m, in % of one
// core (200 for two cores busy throughout); 0 when unknown.
func (m MachineCPU) BusySince(m0 MachineCPU) float64 {
	if m.Total <= m0.Total || m.CPUs == 0 {
		return 0
	}
	return 100 * float64(m.CPUs) * float64(m.Busy-m0.Busy) / float64(m.Total-m0.Total)
}

// LoadAvg returns the 1, 5 and 15 minute load averages of
// /proc/loadavg ("" where it cannot be read).
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	fs := strings.Fields(string(b))
	return strings.Join(fs[:min(3, len(fs))], " ")
}
