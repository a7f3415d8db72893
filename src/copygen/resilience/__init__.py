"""Staying up when a dependency is down: circuit breakers, guarded calls, the memory guard."""
