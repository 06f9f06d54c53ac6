"""The Dagster Definitions of routiine-pipeline: assets, checks, jobs, schedule, sensors, resources."""

from __future__ import annotations

import dagster as dg

from routiine_pipeline import oauth_settings
from routiine_pipeline.defs.automation import sync_job, tenant_sync_schedule
from routiine_pipeline.defs.extract import salesforce_raw
from routiine_pipeline.defs.models import build_model_assets
from routiine_pipeline.defs.resources import (
    ApiBudget,
    ControlPlane,
    SalesforceConnection,
    TenantWarehouse,
)
from routiine_pipeline.defs.scoring import momentum_score
from routiine_pipeline.defs.writeback import (
    opportunity_writeback,
    writeback_job,
    writeback_sensor,
)


def build_resources() -> dict:
    control = ControlPlane()
    budget = ApiBudget(control=control)
    return {
        "warehouse": TenantWarehouse(),
        "control": control,
        "budget": budget,
        "salesforce": SalesforceConnection(
            client_id=oauth_settings.client_id(),
            client_secret=dg.EnvVar(oauth_settings.CLIENT_SECRET_ENV),
            redirect_uri=oauth_settings.redirect_uri(),
            budget=budget,
        ),
    }


models_job = dg.define_asset_job(
    "tenant_models_job",
    selection=dg.AssetSelection.groups("models", "scoring"),
    description="Rebuild one tenant's SQL models and momentum scores from its raw tables.",
)

# Models and the score follow new raw data on their own when the daemon runs:
# eager() materializes a tenant's partition once its upstream partitions updated.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "models_automation_sensor",
    target=dg.AssetSelection.groups("models", "scoring"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds a tenant's models and scores after its raw assets update.",
)


def _with_eager_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.group_name in ("models", "scoring") and spec.automation_condition is None:
        return spec.replace_attributes(
            automation_condition=dg.AutomationCondition.eager()
        )
    return spec


# Recorded by bench/simulated_day.py, not materialized by a job: the spec gives
# its figures a page in the UI.
budget_simulated_day = dg.AssetSpec(
    "budget_simulated_day",
    group_name="reports",
    kinds={"report"},
    description=(
        "A simulated day of API-budget decisions against the emulator: the interval "
        "chosen over time, the calls this pipeline made and the org's usage. Recorded "
        "by `python bench/simulated_day.py`."
    ),
)

defs = dg.Definitions(
    assets=[
        salesforce_raw,
        *build_model_assets(),
        momentum_score,
        opportunity_writeback,
        budget_simulated_day,
    ],
    jobs=[sync_job, models_job, writeback_job],
    schedules=[tenant_sync_schedule],
    sensors=[writeback_sensor, automation_sensor],
    resources=build_resources(),
).map_asset_specs(func=_with_eager_automation)
