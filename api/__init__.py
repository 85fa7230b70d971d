"""The HTTP service: FastAPI routers per audience plus server-rendered web pages."""
