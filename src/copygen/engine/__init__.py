"""Rows and tokens: admission, the bounded queue, continuous batching and the model runner.
Knows nothing of copy, caches or HTTP."""
