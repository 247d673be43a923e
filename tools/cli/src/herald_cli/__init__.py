"""`herald`: a command-line client of Herald's REST API, for operators and CI scripts."""
