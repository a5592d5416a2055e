// Package deploy holds what operators run Tollgate with: the container
// image (Dockerfile), Kubernetes manifests (k8s/), Prometheus alerting
// rules and their tests (prometheus/) and a Grafana dashboard (grafana/).
// Its Go code is tests only: the manifests decode, strictly, into the
// Kubernetes API types and say what the nodes need; the dashboard asks
// for metrics the nodes export.
package deploy
