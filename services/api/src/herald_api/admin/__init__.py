"""The admin web UI, mounted at /admin: server-rendered pages over the API's own services."""
