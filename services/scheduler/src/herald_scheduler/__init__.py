"""Herald's scheduler: starts due mailings, re-queues deferred and orphaned work, ends mailings."""
