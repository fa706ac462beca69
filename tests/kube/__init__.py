"""A strict Kubernetes API stand-in (no API server can be installed here): the real
`kubernetes` client talks HTTP to it; a kubelet inside runs the pods it schedules."""
