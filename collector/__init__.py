"""GreenGauge collector: ingests agents' readings, stores them and computes energy figures."""
