package testserver

import (
	"os"
)

// SaveStore shuts the server down, copies its store directory
// (JetStream's streams) aside, as a backup of its disk taken then would
// hold, and starts it again on the same port.
func (n *NATS) SaveStore() {
	n.t.Helper()
	n.Shutdown()
	saved := n.opts.StoreDir + ".saved"
	if err := os.RemoveAll(saved); err != nil {
		n.t.Fatal(err)
	}
	if err := os.CopyFS(saved, os.DirFS(n.opts.StoreDir)); err != nil {
		n.t.Fatalf("testserver: copy the nats store: %v", err)
	}
	if err := waitFor(startTimeout, n.start); err != nil {
		n.t.Fatal(err)
	}
}

// RestartFromSavedStore shuts the server down and starts it again on the
// same port with the store SaveStore copied aside (a disk restored from
// a backup, a machine from an older snapshot): whatever was stored since
// is gone, and each stream is back where it was then, with its
// configuration, so the sequences after that point are given again.
func (n *NATS) RestartFromSavedStore() {
	n.t.Helper()
	n.Shutdown()
	saved := n.opts.StoreDir + ".saved"
	if _, err := os.Stat(saved); err != nil {
		n.t.Fatalf("testserver: no saved nats store: %v", err)
	}
	if err := os.RemoveAll(n.opts.StoreDir); err != nil {
		n.t.Fatal(err)
	}
	if err := os.CopyFS(n.opts.StoreDir, os.DirFS(saved)); err != nil {
		n.t.Fatalf("testserver: restore the nats store: %v", err)
	}
	if err := waitFor(startTimeout, n.start); err != nil {
		n.t.Fatal(err)
	}
}
