"""Tests of CAP in and out, the warning model and the reference data."""
