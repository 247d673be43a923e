"""Pure business rules: plain values and an explicit ``now`` in, decisions out. No I/O."""
