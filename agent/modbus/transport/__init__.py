"""Modbus on the wire: a bus per serial line or host:port, the Modbus TCP client, RTU
framing through pymodbus."""
