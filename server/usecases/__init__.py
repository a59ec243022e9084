"""What users do with a node: submit, receive and fetch packets, act on cases, seal, deliver."""
