"""The copy workflow: cache → single-flight → generation rounds → CopyResult."""
