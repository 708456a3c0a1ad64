"""HTTP front: the FastAPI app served by the manager (API + dashboard)."""
