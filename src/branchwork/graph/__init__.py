"""The run graph: the run context and the futures a step call returns, invocations, tracing
and cache keys. Below `steps` and `runtime`, which both build on them."""
