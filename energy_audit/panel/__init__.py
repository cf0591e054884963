"""The expert panel: review views, evidence, the decisions ledger."""
