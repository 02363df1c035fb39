"""Modbus: pure decoding and request planning, and the I/O that talks to devices."""
