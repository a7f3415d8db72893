"""User-authored data in a real database (SQLite file by default, PostgreSQL for replicas):
brands, their examples, feedback, and the responses feedback refers to."""
