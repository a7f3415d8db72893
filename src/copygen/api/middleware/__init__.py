"""Plain ASGI middleware, one per module, so streamed responses are never buffered."""
