"""Herald's shared library: settings, models, contracts, broker topology and pure business rules."""
