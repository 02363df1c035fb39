"""Infrastructure both programs run on: logs, atomic files, backoff, config files,
secrets, TLS and how to reach the broker."""
