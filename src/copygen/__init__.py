"""copygen: a FastAPI microservice that writes marketing copy with a language model."""

__version__ = "0.1.0"
