"""Modbus without I/O: request planning, decoding, scaling, what a profile leaves to the
device (resolved through an injected read), and the registers a meter refuses. Tested
exhaustively without a server."""
