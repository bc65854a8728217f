"""api: FastAPI — FHIR search and read, health, and (to come) NEWS2, alerts and trends."""
