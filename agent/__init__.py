"""GreenGauge edge agent: polls Modbus meters and publishes readings over MQTT."""
