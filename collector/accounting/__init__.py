"""The I/O side of the energy and carbon ledger: live accounting, its database, reports."""
