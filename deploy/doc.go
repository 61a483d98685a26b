// Package deploy holds Herald's deployment files (the Dockerfile at the
// repository root, Kubernetes manifests, nginx configurations, Prometheus
// alerts and a Grafana dashboard) and the tests that keep them true to the
// server: timings, probe paths, ports and metric names are checked against
// the real code, and the nginx configurations are run in front of real
// Herald nodes. Its only code embeds the nginx files (Nginx).
package deploy
