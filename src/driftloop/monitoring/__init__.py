"""Monitoring: drift statistics, data quality, performance with delayed labels, alerts."""
