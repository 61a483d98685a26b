package transport

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestKernelMemoryOnHeap checks, with the compiler's escape analysis,
// that the memory io_uring submissions point the kernel at is allocated
// on the heap. A submission entry keeps an address as an integer until
// the write completes, with Go code running in between; memory that
// stays on a goroutine stack (a buffer or iovec that does not escape)
// moves when the stack grows, and the kernel would read freed stack.
func TestKernelMemoryOnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the package")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	cmd := exec.Command(goTool, "build", "-gcflags=-m", "-o", os.DevNull, ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	var ring []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "./uring_linux.go:") || strings.HasPrefix(line, "./flush_linux.go:") {
			ring = append(ring, line)
		}
	}
	all := strings.Join(ring, "\n")
	for _, want := range []string{
		"new(probeMemory) escapes to heap",                // the probe's frame and iovec
		"make([]syscall.Iovec, 0, total) escapes to heap", // writeGroup's iovecs
	} {
		if !strings.Contains(all, want) {
			t.Errorf("escape analysis does not report %q:\n%s", want, all)
		}
	}
	onStack := regexp.MustCompile(`(make\(\[\]byte|make\(\[\]syscall\.Iovec|\[\]syscall\.Iovec\{|\[\]byte\{|new\(\[).*does not escape`)
	for _, line := range ring {
		if onStack.MatchString(line) {
			t.Errorf("memory the ring code allocates stays on the stack: %s", line)
		}
	}
}
