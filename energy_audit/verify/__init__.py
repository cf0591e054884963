"""Verification of the yearly returns: coverage, validity and consistency rules → findings."""
