"""Model-facing pieces: adaptors (forward -> :class:`ModelView`), layer mappings, width
projections and students (from teacher blocks, from a shape, from a pretrained model)."""

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
from .student import (
    check_label_mapping,
    check_tokenizers_match,
    load_pretrained_student,
    student_from_config,
    student_from_teacher,
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
    "check_label_mapping",
    "check_tokenizers_match",
    "ensure_eager_attention",
    "hf_adaptor",
    "layer_pairs",
    "load_pretrained_student",
    "load_projections",
    "mapping_table",
    "matches_from_mapping",
    "model_dims",
    "model_inputs",
    "save_projections",
    "student_from_config",
    "student_from_teacher",
    "unwrap_model",
]
