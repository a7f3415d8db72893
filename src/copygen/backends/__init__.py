"""Remote backends: copygen's generation seam served by any OpenAI-compatible model server."""
