"""The bursting Airflow UI plugin: Browse -> Burst pool, and a Campaign tab on the pages of the
campaign DAG (mc_production) and its runs. This file only declares; the logic lives in bursting.ui.

Enable it by putting this file in Airflow's plugins folder (with the bursting package installed);
see the README, "The Airflow UI page".
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bursting.ui import plugin


class BurstingUIPlugin(AirflowPlugin):
    name = "bursting_ui"
    fastapi_apps = plugin.fastapi_apps()
    external_views = plugin.external_views()
