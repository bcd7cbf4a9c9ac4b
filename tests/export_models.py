"""Small instances of the three models for export tests (real architectures, reduced widths)."""

import torch

from vadedge.train.models import GSMoEConfig, MoMEConfig, URDMUConfig, create_model

FEATURE_DIM = 64
ENCODER = URDMUConfig(feature_dim=FEATURE_DIM, dim=32, heads=2, head_dim=16, mlp_dim=32, head_hidden=16,
                      normal_slots=20, abnormal_slots=20)


def small_model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if name == "urdmu":
        model = create_model("urdmu", ENCODER)
    elif name == "gsmoe":
        model = create_model("gsmoe", GSMoEConfig(encoder=ENCODER, experts=["A", "B", "C"], expert_dim=16, gate_dim=16))
    else:
        model = create_model("mome", MoMEConfig(feature_dim=FEATURE_DIM, embed_dim=32, expert_hidden=16, lgt_layers=1,
                                                lgt_max_len=64, normal_experts=4, explicit_experts=3,
                                                implicit_anomaly_experts=2, num_prototypes=5))
    return model.eval()


def demo_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The demos' sizes (``vad-runtime --demo`` UR-DMU on 1280-d EfficientNet-Lite0 features; ``vad-train --demo``
    GS-MoE widths with 4 experts on the same encoder; MoME ``--demo`` on 512-d), randomly initialised."""
    from vadedge.runtime.demo import DEMO_MODEL
    from vadedge.train.cli import DEMO_GSMOE, DEMO_MOME

    torch.manual_seed(seed)
    encoder = URDMUConfig(**DEMO_MODEL)
    if name == "urdmu":
        model = create_model("urdmu", encoder)
    elif name == "gsmoe":
        model = create_model("gsmoe", GSMoEConfig(encoder=encoder, experts=["Abuse", "Arson", "Fighting", "Shooting"], **DEMO_GSMOE))
    else:
        model = create_model("mome", MoMEConfig(feature_dim=512, **DEMO_MOME))
    return model.eval()
