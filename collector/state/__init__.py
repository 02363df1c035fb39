"""What the running collector knows now: the latest readings, agents' statuses, the live
event stream. Built once by collector.app, fed by the pipeline, read by the API."""
