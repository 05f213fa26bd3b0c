"""One module per rule of the schedule, each with `post(schedule_model)`.

A module's docstring starts with "Hard:" (the rule must hold in every schedule) or "Soft:" (the rule is an
objective term: breaking it costs, never forbids). `model.build_model` posts them in `HARD` then `SOFT` order.
"""
