package storm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
)

// Worker drives one worker process (`herald bench storm-worker`, which
// calls RunWorker on its stdin and stdout). Its methods are not safe for
// concurrent use.
type Worker struct {
	cmd *exec.Cmd
	enc *json.Encoder
	dec *json.Decoder
	in  io.Closer
	// PID is the worker's process id.
	PID int
}

// StartWorker starts exe args… and sends it spec; the child's stderr
// goes to stderr.
func StartWorker(ctx context.Context, exe string, args []string, spec Spec, stderr io.Writer) (*Worker, error) {
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
	w := &Worker{cmd: cmd, enc: json.NewEncoder(stdin), dec: json.NewDecoder(bufio.NewReader(stdout)), in: stdin, PID: cmd.Process.Pid}
	if err := w.enc.Encode(spec); err != nil {
		_ = w.Close()
		return nil, err
	}
	return w, nil
}

// Next reads the worker's next reply.
func (w *Worker) Next() (Reply, error) {
	var r Reply
	if err := w.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("storm: worker %d: %w", w.PID, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("storm: worker %d: %s", w.PID, r.Error)
	}
	return r, nil
}

// Do sends c and returns the reply.
func (w *Worker) Do(c Command) (Reply, error) {
	if err := w.enc.Encode(c); err != nil {
		return Reply{}, err
	}
	return w.Next()
}

// Close tells the worker to stop and waits for it to exit.
func (w *Worker) Close() error {
	_ = w.enc.Encode(Command{Cmd: "stop"})
	_ = w.in.Close()
	return w.cmd.Wait()
}
