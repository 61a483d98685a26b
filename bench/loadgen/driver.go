package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// WorkerHandle drives one worker, in this process or a child process,
// over the JSON-lines protocol of RunWorker. Its methods are not safe for
// concurrent use.
type WorkerHandle struct {
	enc  *json.Encoder
	dec  *json.Decoder
	in   io.Closer
	wait func() error
	// PID is the worker's process id (this process for a local worker).
	PID int
}

// StartLocalWorker runs RunWorker on goroutines of this process, fed
// through pipes: for tests and for small runs.
func StartLocalWorker(ctx context.Context, spec WorkerSpec) (*WorkerHandle, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = RunWorker(ctx, inR, outW)
		_ = inR.Close()
		_ = outW.CloseWithError(io.EOF)
	}()
	h := &WorkerHandle{enc: json.NewEncoder(inW), dec: json.NewDecoder(bufio.NewReader(outR)), in: inW, PID: os.Getpid()}
	h.wait = func() error { wg.Wait(); _ = outR.Close(); return err }
	if err := h.enc.Encode(spec); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// StartProcessWorker runs `exe args...` (which must call RunWorker on its
// stdin and stdout, e.g. `herald bench worker`); the child's stderr is
// passed through to stderr.
func StartProcessWorker(ctx context.Context, exe string, args []string, spec WorkerSpec, stderr io.Writer) (*WorkerHandle, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &WorkerHandle{enc: json.NewEncoder(stdin), dec: json.NewDecoder(bufio.NewReader(stdout)), in: stdin,
		wait: cmd.Wait, PID: cmd.Process.Pid}
	if err := h.enc.Encode(spec); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// Next reads the worker's next reply.
func (h *WorkerHandle) Next() (WorkerReply, error) {
	var r WorkerReply
	if err := h.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("loadgen: worker %d: %w", h.PID, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("loadgen: worker %d: %s", h.PID, r.Error)
	}
	return r, nil
}

// Send writes a command without waiting for an answer.
func (h *WorkerHandle) Send(c Command) error { return h.enc.Encode(c) }

// Do sends a command and returns the reply.
func (h *WorkerHandle) Do(c Command) (WorkerReply, error) {
	if err := h.Send(c); err != nil {
		return WorkerReply{}, err
	}
	return h.Next()
}

// Close tells the worker to stop and waits for it.
func (h *WorkerHandle) Close() error {
	_ = h.enc.Encode(Command{Cmd: "stop"})
	_ = h.in.Close()
	err := h.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("loadgen: worker %d: %w", h.PID, err)
	}
	return err
}
