"""Alerts delivered to people: a webhook, email, DingTalk and WeCom group robots.

`settings` is the config (`notify:` in the collector config), `events` the notice every
channel formats (pure), `message` the texts (pure), `routing` which channels a notice
goes to and quiet hours (pure), one module per channel (the request it makes is pure,
the sending is not), `notifier` the bounded queue and the worker thread that delivers
with retries, so that nothing here can hold back ingest or accounting.
"""
