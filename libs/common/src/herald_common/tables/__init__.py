"""One module per table: the predicates and queries that say what its rows mean.

In the role of a repository (as in Polar's ``server/``): the API, the admin UI, the scheduler,
the sender and the reporter build their statements from these expressions, so a rule such as
"a mailing is due" or "a message is unsettled" is written once. The pure rules that need no
database stay in ``herald_common.rules``.
"""
