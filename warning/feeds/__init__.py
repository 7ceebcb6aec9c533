"""Feeds the service polls itself: CAP indexes and documents, and river and rain gauges against site thresholds."""
