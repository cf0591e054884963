"""Institution directory (名录库): credit codes, checks, history."""
