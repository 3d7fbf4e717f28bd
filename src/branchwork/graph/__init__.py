"""The run graph: invocations, tracing and cache keys."""
