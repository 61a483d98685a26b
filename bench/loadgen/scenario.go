package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"
)

// Fleet is a set of subscriber workers holding the connections of one
// scenario.
type Fleet struct {
	Workers   []*WorkerHandle
	Connected int
	Failed    int
	PerRoom   map[int]int
	FirstErr  string
	ConnectIn time.Duration // until the last worker was ready
}

// WorkerStarter starts one worker for spec.
type WorkerStarter func(ctx context.Context, spec WorkerSpec) (*WorkerHandle, error)

// LocalWorkers starts workers on goroutines of this process.
func LocalWorkers(ctx context.Context, spec WorkerSpec) (*WorkerHandle, error) {
	return StartLocalWorker(ctx, spec)
}

// SplitSpecs divides spec.Conns over workers of at most perWorker
// connections each.
func SplitSpecs(spec WorkerSpec, perWorker int) []WorkerSpec {
	if perWorker <= 0 {
		perWorker = spec.Conns
	}
	n := max(1, (spec.Conns+perWorker-1)/perWorker)
	var out []WorkerSpec
	for i := 0; i < n; i++ {
		s := spec
		s.Offset = spec.Offset + i*spec.Conns/n
		s.Conns = (i+1)*spec.Conns/n - i*spec.Conns/n
		out = append(out, s)
	}
	return out
}

// StartFleet starts one worker per spec, all at once, and waits until each
// has connected (or failed to connect) its subscribers.
func StartFleet(ctx context.Context, specs []WorkerSpec, start WorkerStarter) (*Fleet, error) {
	t0 := time.Now()
	f := &Fleet{PerRoom: map[int]int{}}
	for _, s := range specs {
		h, err := start(ctx, s)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.Workers = append(f.Workers, h)
	}
	for _, h := range f.Workers {
		r, err := h.Next()
		if err != nil {
			f.Close()
			return nil, err
		}
		if r.Ready == nil {
			f.Close()
			return nil, errors.New("loadgen: worker did not report ready")
		}
		f.Connected += r.Ready.Connected
		f.Failed += r.Ready.Failed
		for room, n := range r.Ready.PerRoom {
			f.PerRoom[room] += n
		}
		if f.FirstErr == "" {
			f.FirstErr = r.Ready.FirstErr
		}
	}
	f.ConnectIn = time.Since(t0)
	return f, nil
}

// PIDs returns the worker process ids, this process excluded.
func (f *Fleet) PIDs() []int {
	var out []int
	self := os.Getpid()
	for _, h := range f.Workers {
		if h.PID != self {
			out = append(out, h.PID)
		}
	}
	return out
}

// Close stops every worker and waits for it.
func (f *Fleet) Close() error {
	var errs []error
	for _, h := range f.Workers {
		errs = append(errs, h.Close())
	}
	return errors.Join(errs...)
}

func (f *Fleet) count(step int) (int64, error) {
	var n int64
	for _, h := range f.Workers {
		r, err := h.Do(Command{Cmd: "count", Step: step})
		if err != nil {
			return 0, err
		}
		if r.Count != nil {
			n += *r.Count
		}
	}
	return n, nil
}

func (f *Fleet) report(step int) (*StepReport, error) {
	total := &StepReport{Step: step, Latency: &Histogram{}}
	for _, h := range f.Workers {
		r, err := h.Do(Command{Cmd: "report", Step: step})
		if err != nil {
			return nil, err
		}
		if r.Report == nil {
			return nil, errors.New("loadgen: worker sent no report")
		}
		total.Received += r.Report.Received
		total.Duplicates += r.Report.Duplicates
		total.Disconnects += r.Report.Disconnects
		total.Latency.Merge(r.Report.Latency)
		if r.Report.LatencyMix != nil {
			if total.LatencyMix == nil {
				total.LatencyMix = &Histogram{}
			}
			total.ReceivedMix += r.Report.ReceivedMix
			total.LatencyMix.Merge(r.Report.LatencyMix)
		}
	}
	return total, nil
}

// verify asks every worker to check its subscribers against published
// and adds up their answers.
func (f *Fleet) verify(step int, published []int64) (VerifyReport, error) {
	var total VerifyReport
	for _, h := range f.Workers {
		r, err := h.Do(Command{Cmd: "verify", Step: step, Published: published})
		if err != nil {
			return total, err
		}
		if r.Verify == nil {
			return total, errors.New("loadgen: worker sent no verification")
		}
		total.Clients += r.Verify.Clients
		total.Short += r.Verify.Short
		total.Missing += r.Verify.Missing
		total.Gone += r.Verify.Gone
		total.Extra += r.Verify.Extra
	}
	return total, nil
}

// SubscribersPerRoom is the average number of subscribers in a room.
func (f *Fleet) SubscribersPerRoom() float64 {
	if len(f.PerRoom) == 0 {
		return 0
	}
	return float64(f.Connected) / float64(len(f.PerRoom))
}

// StepConfig is one measured broadcast step.
type StepConfig struct {
	Step int
	// DeliveriesPerSec is the offered delivery rate; the publish rate is
	// this divided by the subscribers per room.
	DeliveriesPerSec float64
	PayloadBytes     int
	Duration         time.Duration
	// DrainTimeout is how long to wait, after publishing stops, for the
	// deliveries still in flight; whatever has not arrived then is lost.
	DrainTimeout time.Duration
	// ServerPIDs are measured for CPU; LoadPIDs (workers, this process) for
	// the load generator's own CPU.
	ServerPIDs []int
	LoadPIDs   []int
}

// StepResult is what one broadcast step measured.
type StepResult struct {
	OfferedDeliveriesPerSec float64 `json:"offeredDeliveriesPerSec"`
	MsgsPerSec              float64 `json:"msgsPerSec"`
	PayloadBytes            int     `json:"payloadBytes"`
	Subscribers             int     `json:"subscribers"`
	Rooms                   int     `json:"rooms"`
	Seconds                 float64 `json:"seconds"`
	Published               int64   `json:"published"`
	Expected                int64   `json:"expected"`
	Received                int64   `json:"received"`
	Lost                    int64   `json:"lost"`
	Duplicates              int64   `json:"duplicates"`
	Disconnects             int64   `json:"disconnects"`
	// Clients is the subscribers checked one by one after the step;
	// ClientsShort those that lacked a message of their room (of them,
	// ClientsGone had been disconnected). MinPerClient is the fewest
	// messages a subscriber's room was published in the step: at least 1
	// means the step reached every subscriber.
	Clients         int     `json:"clients"`
	ClientsShort    int     `json:"clientsShort"`
	ClientsGone     int     `json:"clientsGone"`
	MinPerClient    int64   `json:"minPerClient"`
	PublishedPerSec float64 `json:"publishedPerSec"` // over the publishing time
	// PublishErrors is the error frames the publishers got during the
	// step (and its drain): publications the server refused, which are
	// counted as published, so as lost.
	PublishErrors          int64   `json:"publishErrors,omitempty"`
	DeliveriesPerSec       float64 `json:"deliveriesPerSec"`
	Latency                Summary `json:"latency"`
	ServerCPUSeconds       float64 `json:"serverCPUSeconds"`
	ServerCPUPerDeliveryUs float64 `json:"serverCPUPerDeliveryUs"`
	LoadCPUPerDeliveryUs   float64 `json:"loadCPUPerDeliveryUs"`
	// OthersCPUPercent is the CPU, in % of one core, that the machine
	// spent during the step on anything but the server and the load
	// generator: other processes, or the kernel's work for them. The
	// targets of one run are measured one after the other, so a step
	// that shared the machine with someone else's work (a build, a test)
	// shows it here; its latency then says little about the target.
	OthersCPUPercent float64 `json:"othersCPUPercent"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute averages at the
	// step's start.
	LoadAvg string `json:"loadAvg,omitempty"`
	// With a WorkerSpec.MixKind, Latency is that of the subscribers of
	// the fleet's Kind and LatencyMix that of the others, which got the
	// same broadcasts (ReceivedMix of the deliveries).
	ReceivedMix int64    `json:"receivedMix,omitempty"`
	LatencyMix  *Summary `json:"latencyMix,omitempty"`
}

// OK reports whether the step lost nothing, no subscriber lacked a
// message, and p99 stayed under bound (that of both kinds of a mixed
// fleet).
func (r StepResult) OK(bound time.Duration) bool {
	b := float64(bound) / float64(time.Millisecond)
	return r.Lost == 0 && r.ClientsShort == 0 && r.PublishErrors == 0 && r.Received > 0 && r.Latency.P99 < b &&
		(r.LatencyMix == nil || r.LatencyMix.P99 < b)
}

// RunBroadcastStep publishes through pub at the step's rate and collects
// what the fleet received.
func RunBroadcastStep(ctx context.Context, f *Fleet, pub *Publisher, c StepConfig) (StepResult, error) {
	if c.Step < 0 || c.Step >= MaxSteps {
		return StepResult{}, fmt.Errorf("loadgen: step %d out of range", c.Step)
	}
	perRoom := f.SubscribersPerRoom()
	if perRoom == 0 {
		return StepResult{}, errors.New("loadgen: no subscribers")
	}
	msgs := c.DeliveriesPerSec / perRoom
	la, m0 := LoadAvg(), ReadMachineCPU()
	cpu0, load0 := SumCPU(c.ServerPIDs), SumCPU(c.LoadPIDs)
	t0, errs0 := time.Now(), pub.Errors()
	published, err := pub.Run(ctx, c.Step, msgs, c.PayloadBytes, c.Duration)
	if err != nil {
		return StepResult{}, err
	}
	expected := ExpectedDeliveries(published, f.PerRoom)
	var npub int64
	for _, n := range published {
		npub += n
	}
	drainEnd := time.Now().Add(c.DrainTimeout)
	var got int64
	for {
		got, err = f.count(c.Step)
		if err != nil {
			return StepResult{}, err
		}
		if got >= expected || time.Now().After(drainEnd) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	cpu := SumCPU(c.ServerPIDs) - cpu0
	load := SumCPU(c.LoadPIDs) - load0
	busy := ReadMachineCPU().BusySince(m0)
	rep, err := f.report(c.Step)
	if err != nil {
		return StepResult{}, err
	}
	pubErrs := pub.Errors() - errs0
	ver, err := f.verify(c.Step, published)
	if err != nil {
		return StepResult{}, err
	}
	minPer := int64(-1)
	for room, n := range f.PerRoom {
		if n > 0 && room < len(published) && (minPer < 0 || published[room] < minPer) {
			minPer = published[room]
		}
	}
	res := StepResult{
		OfferedDeliveriesPerSec: c.DeliveriesPerSec,
		MsgsPerSec:              msgs,
		PayloadBytes:            c.PayloadBytes,
		Subscribers:             f.Connected,
		Rooms:                   len(f.PerRoom),
		Seconds:                 elapsed.Seconds(),
		Published:               npub,
		Expected:                expected,
		Received:                rep.Received,
		Lost:                    Lost(expected, rep.Received),
		Duplicates:              rep.Duplicates,
		Disconnects:             rep.Disconnects,
		Clients:                 ver.Clients,
		ClientsShort:            ver.Short,
		ClientsGone:             ver.Gone,
		MinPerClient:            max(0, minPer),
		PublishedPerSec:         float64(npub) / c.Duration.Seconds(),
		PublishErrors:           pubErrs,
		DeliveriesPerSec:        float64(rep.Received) / elapsed.Seconds(),
		Latency:                 rep.Latency.Summarize(),
		ServerCPUSeconds:        cpu.Seconds(),
		OthersCPUPercent:        max(0, busy-100*(cpu+load).Seconds()/elapsed.Seconds()),
		LoadAvg:                 la,
	}
	if rep.LatencyMix != nil {
		mix := rep.LatencyMix.Summarize()
		res.ReceivedMix, res.LatencyMix = rep.ReceivedMix, &mix
	}
	if rep.Received > 0 {
		res.ServerCPUPerDeliveryUs = float64(cpu.Microseconds()) / float64(rep.Received)
		res.LoadCPUPerDeliveryUs = float64(load.Microseconds()) / float64(rep.Received)
	}
	return res, nil
}

// ExpectedDeliveries is how many deliveries the subscribers should get:
// every message published to a room, once per subscriber of that room.
func ExpectedDeliveries(published []int64, perRoom map[int]int) int64 {
	var n int64
	for room, p := range published {
		n += p * int64(perRoom[room])
	}
	return n
}

// Lost is expected minus received, never negative (duplicates are counted
// apart and not received twice).
func Lost(expected, received int64) int64 { return max(0, expected-received) }

// RampResult is the outcome of raising the rate until a step fails.
type RampResult struct {
	Steps []StepResult `json:"steps"`
	// MaxOK is the highest measured delivery rate of a step that lost
	// nothing with p99 under the bound (0 if none passed).
	MaxOK StepResult `json:"maxOK"`
	Bound float64    `json:"boundMs"`
}

// Ramp runs steps at each offered rate in rates (deliveries/s, ascending)
// from firstStep on, until one loses messages or its p99 exceeds bound
// (twice in a row).
func Ramp(ctx context.Context, f *Fleet, pub *Publisher, base StepConfig, firstStep int, rates []float64, bound time.Duration, logf func(string, ...any)) (RampResult, int, error) {
	res := RampResult{Bound: float64(bound) / float64(time.Millisecond)}
	step := firstStep
	for _, rate := range rates {
		if step >= MaxSteps {
			break
		}
		// A step that fails its bound is run once more before the ramp
		// stops, so that one noisy moment on a shared machine does not end
		// it; a step that lost messages or connections is not retried.
		var r StepResult
		for attempt := 0; attempt < 2 && step < MaxSteps; attempt++ {
			c := base
			c.Step, c.DeliveriesPerSec = step, rate
			var err error
			r, err = RunBroadcastStep(ctx, f, pub, c)
			step++
			if err != nil {
				return res, step, err
			}
			res.Steps = append(res.Steps, r)
			if logf != nil {
				logf("  ramp %8.0f/s offered: %8.0f/s delivered, p99 %.1f ms, lost %d, disconnects %d; others %.0f%% of a core, load %s",
					rate, r.DeliveriesPerSec, r.Latency.P99, r.Lost, r.Disconnects, r.OthersCPUPercent, r.LoadAvg)
			}
			if r.OK(bound) || r.Lost > 0 || r.Disconnects > 0 {
				break
			}
			time.Sleep(time.Second)
		}
		if !r.OK(bound) {
			break
		}
		if r.DeliveriesPerSec > res.MaxOK.DeliveriesPerSec {
			res.MaxOK = r
		}
		// Let any backlog clear before the next, higher rate.
		time.Sleep(500 * time.Millisecond)
	}
	return res, step, nil
}

// ChurnResult is the outcome of a churn run over all workers.
type ChurnResult struct {
	Connects         int64   `json:"connects"`
	Failures         int64   `json:"failures"`
	Seconds          float64 `json:"seconds"`
	ConnectsPerSec   float64 `json:"connectsPerSec"`
	Latency          Summary `json:"latency"`
	ServerCPUSeconds float64 `json:"serverCPUSeconds"`
	ServerCPUPerConn float64 `json:"serverCPUPerConnectUs"`
	FirstErr         string  `json:"firstErr,omitempty"`
}

// RunChurn starts churn workers for specs, starts them together, and
// merges their reports.
func RunChurn(ctx context.Context, specs []WorkerSpec, start WorkerStarter, serverPIDs []int) (ChurnResult, error) {
	f, err := StartFleet(ctx, specs, start)
	if err != nil {
		return ChurnResult{}, err
	}
	defer f.Close()
	cpu0 := SumCPU(serverPIDs)
	t0 := time.Now()
	for _, h := range f.Workers {
		if err := h.Send(Command{Cmd: "start"}); err != nil {
			return ChurnResult{}, err
		}
	}
	res := ChurnResult{}
	h := &Histogram{}
	for _, w := range f.Workers {
		r, err := w.Next()
		if err != nil {
			return res, err
		}
		if r.Churn == nil {
			return res, errors.New("loadgen: churn worker sent no report")
		}
		res.Connects += r.Churn.Connects
		res.Failures += r.Churn.Failures
		h.Merge(r.Churn.Latency)
		if res.FirstErr == "" {
			res.FirstErr = r.Churn.FirstErr
		}
	}
	el := time.Since(t0)
	cpu := SumCPU(serverPIDs) - cpu0
	res.Seconds = el.Seconds()
	res.ConnectsPerSec = float64(res.Connects) / el.Seconds()
	res.Latency = h.Summarize()
	res.ServerCPUSeconds = cpu.Seconds()
	if res.Connects > 0 {
		res.ServerCPUPerConn = float64(cpu.Microseconds()) / float64(res.Connects)
	}
	return res, nil
}

// Median returns the median of xs (the lower middle of an even count is
// averaged with the upper), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
