"""The provincial energy online-monitoring platform (重点用能单位能耗在线监测系统): the
indicator catalogue, the indicators of a slot, day and month with their data quality,
their export, and their upload with a record of what was sent."""
