"""Herald's sender: consumes delivery jobs, calls the provider, records every outcome."""
