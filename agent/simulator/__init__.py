"""A meter simulator: serves any profile over Modbus TCP with plausible, changing values.

`values` is the meter model (pure: a function of unit id and time); `server` encodes it
through a profile's registers and answers Modbus requests, for commissioning and tests
without hardware.
"""
