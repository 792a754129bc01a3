"""The auditagent collector: receives signed readiness reports from enrolled devices and
serves each unit's signed policy.

Modules
-------
``app``      FastAPI application (OpenAPI at /openapi.json): /healthz, /v1/enroll,
             /v1/reports, /v1/devices/{id}/policy; JSON errors ``{"error": {"code", "message"}}``.
``store``    the operations on storage (units, tokens, devices and key history, policies,
             report ingest with the sequence rule enforced by the database).
``db``       SQLAlchemy Core tables and engines (SQLite in WAL mode by default; PostgreSQL via
             psycopg 3 for production and several collector processes).
``migrate``  Alembic migrations (``server/migrations``), run programmatically.
``cli``      ``auditagent-collector`` (serve, db upgrade, unit, token, device, policy).
``logs``     structlog JSON logging — ids and codes only, never tokens, keys or facts.

The wire format (in-toto Statement v1 in a DSSE envelope, Ed25519) is defined once, in
:mod:`auditagent.report`, and shared with the agent.
"""
