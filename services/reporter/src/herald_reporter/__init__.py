"""Herald reporter: the daily statistics e-mail."""
