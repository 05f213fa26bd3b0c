"""Retention: features, the no-show model, the return-time model and next-best-action."""
