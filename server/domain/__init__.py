"""The node's domain: case workflow, signed statements, matters and errors; no transport, no SQL."""
