"""SQL models: load `dbt_like_sql/*.sql`, order them by the tables they read, build them."""

from routiine_pipeline.models.checks import TestOutcome, run_model_tests
from routiine_pipeline.models.config import ModelConfig, ModelConfigError, ModelTests
from routiine_pipeline.models.loader import (
    DEFAULT_MODELS_DIR,
    ColumnSource,
    ModelError,
    ModelGraphError,
    ModelParseError,
    ModelProject,
    SqlModel,
    load_models,
    parse_model_file,
)
from routiine_pipeline.models.mapping_tables import write_mapping_tables
from routiine_pipeline.models.runner import (
    ModelRunResult,
    UnmappedValue,
    run_model,
    run_models,
)

__all__ = [
    "DEFAULT_MODELS_DIR",
    "ColumnSource",
    "ModelConfig",
    "ModelConfigError",
    "ModelError",
    "ModelGraphError",
    "ModelParseError",
    "ModelProject",
    "ModelRunResult",
    "ModelTests",
    "SqlModel",
    "TestOutcome",
    "UnmappedValue",
    "load_models",
    "parse_model_file",
    "run_model",
    "run_model_tests",
    "run_models",
    "write_mapping_tables",
]
