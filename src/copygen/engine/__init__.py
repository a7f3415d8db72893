"""The engine: cache, batching, breaker, runner and post-processing. Knows nothing of HTTP."""
