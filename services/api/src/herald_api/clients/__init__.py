"""The client directory."""
