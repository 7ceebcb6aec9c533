"""Early-warning dissemination service: the core."""
