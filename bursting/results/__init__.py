"""Campaign results to object storage, verified: Swift through openstacksdk, or any S3 endpoint
(Swift's s3api included) through boto3.

`publish.publish` is the one publish logic (plan, conflicts, verification, URLs) over the
`base.ObjectStore` seam; `swift.SwiftStore` and `s3.S3Store` implement it; `settings` reads a
connection's settings (`kind: swift|s3`) and opens the store; `rules` and `digests` are the pure
parts. No Airflow here: the DAG's publish task reads its connection and calls these. Nothing is
imported here, so that reading the pure rules (as the DAG file does when it is parsed) loads
neither SDK.
"""
