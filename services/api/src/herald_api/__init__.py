"""Herald's REST API: clients, mailings and their statistics."""
