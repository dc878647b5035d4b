"""leadrank's HTTP API: FastAPI routes and a SQL store around ``recommender.pipeline``.

``create_app(settings)`` in :mod:`service.main` builds the app; :mod:`service.cli_support`
holds what ``leadrank serve``, ``leadrank keys create`` and ``leadrank demo`` call.
"""
