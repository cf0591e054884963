"""Statistical outlier methods: generic, documented functions on any polars frame.

They know frames and columns, not rules: each takes column names as parameters, returns the same
kind of frame it was given (DataFrame or LazyFrame) with added score columns, never changes its
input, and cites its source. Verification wires them into findings (category ``statistical``).
"""
