"""The node's gRPC transport: servicers for its callers, and calls to its peer nodes.

Servicers only convert and delegate; errors become statuses in one place; admission
control and request decoding guard every call.
"""
