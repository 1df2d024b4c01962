// Package contrib holds no code: it is the test-only module that checks
// the monitoring files beside it (grafana/ and prometheus/) against the
// daemon's metric registry (internal/metrics) and Prometheus's own rule
// and PromQL parsers, and replays failures through Prometheus's rule
// engine to see which alerts fire. It is a module of its own so that Prometheus stays
// out of the daemon's dependencies: run its tests with
// `cd contrib && go test ./...`.
package contrib
