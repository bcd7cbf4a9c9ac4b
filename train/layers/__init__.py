"""Layers shared by every model: temporal blocks, memory units, top-K reads."""

from .heads import Classifier
from .experts import BatchedLinear, BatchedTransformerBlock, ExpertBank
from .memory import MemoryUnit, memory_read, memory_topk, temporal_topk, topk_gather_mean, topk_mean
from .temporal import ConvEmbedding, GLAttention, GLTransformer, local_distance_matrix

__all__ = [
    "BatchedLinear", "Classifier", "memory_read", "BatchedTransformerBlock", "ExpertBank",
    "ConvEmbedding", "GLAttention", "GLTransformer", "MemoryUnit", "local_distance_matrix",
    "memory_topk", "temporal_topk", "topk_gather_mean", "topk_mean",
]
