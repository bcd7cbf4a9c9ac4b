"""Multi-stage training pipelines (GS-MoE)."""
