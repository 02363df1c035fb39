"""What the edge agent and the collector share, importing neither.

`greengauge.contract` is the wire contract (fields, quantities, messages, topics);
`greengauge.common` is the infrastructure both programs run on (logs, files, backoff,
config files, secrets, TLS, the broker settings).
"""
