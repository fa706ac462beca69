"""High availability: replicas of `bursting run` elect one leader through a
coordination.k8s.io/v1 Lease, and only the leader acts. `decision` is pure; `lease` is the
Kubernetes API edge; `elector` runs the rounds in a thread. Import `elector` only when
leader election is on: without it no Kubernetes client is loaded."""
