"""Modbus: `codec` (pure: planning, decoding, scaling, resolution) and `transport` (the
I/O that talks to devices); `errors` are shared by both."""
