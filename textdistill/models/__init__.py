"""Model-facing pieces: adaptors (forward -> :class:`ModelView`), layer mappings and
width projections."""

from ..errors import (
    AttentionUnavailableError,
    FeatureUnavailableError,
    HiddenStatesUnavailableError,
)
from .adaptors import (
    Adaptor,
    ModelDims,
    ModelView,
    ensure_eager_attention,
    hf_adaptor,
    model_dims,
    model_inputs,
    unwrap_model,
)
from .mapping import PRESETS, layer_pairs, mapping_table, matches_from_mapping
from .projections import (
    CROSS_WIDTH_LOSSES,
    Projection,
    build_projections,
    load_projections,
    save_projections,
)

__all__ = [
    "CROSS_WIDTH_LOSSES",
    "PRESETS",
    "Adaptor",
    "AttentionUnavailableError",
    "FeatureUnavailableError",
    "HiddenStatesUnavailableError",
    "ModelDims",
    "ModelView",
    "Projection",
    "build_projections",
    "ensure_eager_attention",
    "hf_adaptor",
    "layer_pairs",
    "load_projections",
    "mapping_table",
    "matches_from_mapping",
    "model_dims",
    "model_inputs",
    "save_projections",
    "unwrap_model",
]
