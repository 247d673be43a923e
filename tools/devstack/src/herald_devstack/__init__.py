"""Local infrastructure for Herald: PostgreSQL, RabbitMQ, process supervision, `herald-dev`."""
