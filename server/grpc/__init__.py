"""The node's gRPC transport: servicers that convert and delegate, the one error-to-status
mapping, admission control and request decoding."""
