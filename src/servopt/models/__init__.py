"""Model architectures (registry) and their per-phase op decomposition."""
