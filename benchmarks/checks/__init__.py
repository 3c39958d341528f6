"""One-off checks behind figures in docs/: run each as `python -m benchmarks.checks.NAME` from the repository."""
