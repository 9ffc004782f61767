"""The node: the service that composes the components, its read side, assembly from options
and config, metrics, and signature verification with its worker processes."""
