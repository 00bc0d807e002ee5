"""The HTTP layer: request parsing, routes, problem+json, auth and middleware.

Only `app.build_app` assembles these; lower layers never import from here.
"""
