"""The collector's HTTP API, live stream and dashboard (issue 6).

`settings` imports only pydantic (the config loads it); `app` builds the ASGI app.
"""
