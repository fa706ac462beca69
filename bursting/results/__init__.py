"""Campaign results to object storage: Swift containers through openstacksdk, verified.

`objectstore.publish_objects` uploads, `settings` names the store (a clouds.yaml entry) and
connects, `rules` and `digests` are the pure parts. No Airflow here: the DAG's publish task
reads its connection and calls these. Nothing is imported here, so that reading the pure rules
(as the DAG file does when it is parsed) does not load openstacksdk.
"""
