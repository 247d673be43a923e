"""Test support for Herald: data factories and a launcher of the real processes."""
