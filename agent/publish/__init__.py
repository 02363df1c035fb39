"""Store and forward: readings batched into the disk outbox (`batcher`), the outbox sent to
the broker (`forwarder`), the agent's status (`status`), its counters on disk (`stats`);
`publisher` puts them together."""
