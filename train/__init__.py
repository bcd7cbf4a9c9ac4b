"""Training half: models, losses, community-format data, ground truth, metrics and CLIs (needs PyTorch)."""
