"""Policy and its governance layers."""
