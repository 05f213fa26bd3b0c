"""The clinic-day schedule optimizer: pure functions over instance and solution dataclasses.

`instance.parse_instance` reads a `clinic-day-instance/1` document, `model.solve` returns the best schedule
found within a time limit, `validate.check` scores and checks a schedule independently of the model, and
`explain.explain` says why each request was or was not booked. Nothing here touches a database.
"""
