"""Energy and carbon accounting: `core` is the pure maths (counters, conversion, carbon,
intensity, benchmarks, tariffs, targets, alerts); around it the I/O: the live pipeline
(`engine`, `live`), one pass over stored readings (`passes`), the database (`db`), the
read side (`queries`), the points written to the store (`points`), swaps."""
