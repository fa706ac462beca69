"""The Airflow web UI page: the burst pool (Browse -> Burst pool) and a Campaign tab for the
`mc_production` DAG, served as a FastAPI app that plugins/bursting_ui.py hands to Airflow.

Read-only: it reads the controller's /status, the pool through the provider's hook and the
Airflow database; every route needs an Airflow user with read access.
"""
