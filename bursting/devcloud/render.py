"""The services' config files: package templates with `@NAME@` placeholders, filled in per `up`.

Every file goes under the state directory and is readable by its owner only: several hold the
service users' and the database's passwords.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bursting.devcloud.layout import HOST, PORTS, DevCloudError, Paths
from bursting.model import Secret

PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
COMPUTE_HOST = "devcloud-compute"
DB_USER = "os"

# template -> where it goes, relative to the state directory's etc/
CONFIG_FILES: dict[str, str] = {
    "my.cnf": "my.cnf",
    "rabbitmq.conf": "rabbitmq/rabbitmq.conf",
    "enabled_plugins": "rabbitmq/enabled_plugins",
    "keystone.conf": "keystone/keystone.conf",
    "placement.conf": "placement/placement.conf",
    "glance-api.conf": "glance/glance-api.conf",
    "glance-api-paste.ini": "glance/glance-api-paste.ini",
    "neutron.conf": "neutron/neutron.conf",
    "neutron-api-paste.ini": "neutron/api-paste.ini",
    "ml2_conf.ini": "neutron/plugins/ml2/ml2_conf.ini",
    "nova.conf": "nova/nova.conf",
    "nova-api-paste.ini": "nova/api-paste.ini",
    "swift/swift.conf": "swift/swift.conf",
    "swift/proxy-server.conf": "swift/proxy-server.conf",
    "swift/account-server.conf": "swift/account-server.conf",
    "swift/container-server.conf": "swift/container-server.conf",
    "swift/object-server.conf": "swift/object-server.conf",
}

# The WSGI modules gunicorn serves. The services no longer install `*-wsgi` scripts, and each
# application parses sys.argv at import, so the wrapper hands it gunicorn's argv[0] only.
WSGI_APPS: dict[str, str] = {
    "keystone_app": "keystone.wsgi.api",
    "placement_app": "placement.wsgi.api",
    "glance_app": "glance.wsgi.api",
    "nova_app": "nova.wsgi.osapi_compute",
    "neutron_app": "neutron.wsgi.api",
}
# Neutron 29 with SQLAlchemy 2.1: the first port listing touches a backref before any query has
# configured the mappers; importing every model and configuring them up front avoids that.
NEUTRON_PRELUDE = (
    "import neutron.db.migration.models.head  # noqa: F401\n"
    "import sqlalchemy.orm\n"
    "sqlalchemy.orm.configure_mappers()\n"
)
PRELUDES: dict[str, str] = {"neutron_app": NEUTRON_PRELUDE}  # before the application's import

# Keystone and Neutron build their policy enforcer at the first request that needs one, and a
# second request served meanwhile by another thread of the same worker sees it before its rules
# are registered: a spurious 403 (seen on the admin's first concurrent create_user). Each worker
# builds it while loading the application, before it serves anything.
POLICY_WARMUP: dict[str, str] = {
    "keystone_app": (
        "from keystone.common.rbac_enforcer.enforcer import RBACEnforcer\n"
        "_rbac = RBACEnforcer()\n"
        "_rbac.suppress_deprecation_warnings = True  # as under a request: one notice in all\n"
        "_rbac._enforcer.load_rules()\n"
    ),
    "neutron_app": "import neutron.policy\n\nneutron.policy.init()\n",
}


@dataclass(frozen=True)
class Settings:
    """What the templates are filled in with; the passwords are made afresh by each `up`."""

    paths: Paths
    db_password: Secret
    service_password: Secret

    @property
    def keystone_url(self) -> str:
        return f"http://{HOST}:{PORTS['keystone']}/v3"

    def values(self) -> dict[str, str]:
        paths = self.paths
        return {
            "RUN": str(paths.run),
            "ETC": str(paths.etc),
            "LOGS": str(paths.logs),
            "DATA": str(paths.data),
            "DB": f"mysql+pymysql://{DB_USER}:{self.db_password.reveal()}@{HOST}:"
            f"{PORTS['mariadb']}",
            "RABBIT": f"rabbit://guest:guest@{HOST}:{PORTS['rabbitmq']}/",
            "KEYSTONE": self.keystone_url,
            "SERVICE_PASSWORD": self.service_password.reveal(),
            "COMPUTE_HOST": COMPUTE_HOST,
            "MARIADB_PORT": str(PORTS["mariadb"]),
            "RABBITMQ_PORT": str(PORTS["rabbitmq"]),
            "SWIFT_PROXY_PORT": str(PORTS["swift-proxy"]),
            "SWIFT_OBJECT_PORT": str(PORTS["swift-object"]),
            "SWIFT_CONTAINER_PORT": str(PORTS["swift-container"]),
            "SWIFT_ACCOUNT_PORT": str(PORTS["swift-account"]),
            "SWIFT_DIR": str(paths.etc / "swift"),
            "DEVICES": str(paths.swift_devices),
            "USER": _user(),
            # Fixed: the Swift data is wiped with the rest at each `up`.
            "HASH_SUFFIX": "bursting-devcloud-suffix",
            "HASH_PREFIX": "bursting-devcloud-prefix",
        }


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def template(name: str) -> str:
    return resources.files("bursting.devcloud").joinpath("templates", name).read_text()


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill in every `@NAME@`; a placeholder without a value is an error, never left in."""
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise DevCloudError(f"devcloud template needs values for: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def write_configs(settings: Settings) -> None:
    """Every config file, the WSGI wrappers and the helper modules, under the state dir."""
    values = settings.values()
    etc = settings.paths.etc
    for name, target in CONFIG_FILES.items():
        write_private(etc / target, render(template(name), values))
    pylib = settings.paths.run / "pylib"
    for module, app in WSGI_APPS.items():
        write_private(
            pylib / f"{module}.py",
            wsgi_module(app, PRELUDES.get(module, ""), POLICY_WARMUP.get(module, "")),
        )
    write_private(pylib / "devcloud_ml2.py", template("devcloud_ml2.py.txt"))
    write_private(pylib / "swift_run_server.py", template("swift/run_server.py.txt"))
    # An entry point, so ML2 (which loads mechanism drivers by name through stevedore) finds
    # devcloud's driver on the PYTHONPATH without anything installed into the services' venv.
    dist = pylib / "devcloud_ml2-0.dist-info"
    write_private(dist / "METADATA", "Metadata-Version: 2.1\nName: devcloud-ml2\nVersion: 0\n")
    write_private(dist / "entry_points.txt", template("devcloud_ml2.entry_points.txt"))


def wsgi_module(app: str, prelude: str = "", warmup: str = "") -> str:
    return (
        f"import sys\n\nsys.argv = sys.argv[:1]\n{prelude}from {app} import application\n{warmup}"
    )
