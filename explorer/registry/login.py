"""``strata login`` / ``logout``: prove credentials to a registry, then keep or forget them
in Strata's own credentials file (Docker's is only ever read)."""

from __future__ import annotations

from ..errors import InvalidArgument
from .client import RegistryClient
from .credentials import Credentials, CredentialStore
from .settings import RegistrySettings, normalize_server


def login(server: str | None, username: str, password: str, *, settings: RegistrySettings | None = None) -> str:
    """Check ``username``/``password`` against ``server`` (default Docker Hub) and save them."""
    settings = settings or RegistrySettings.load()
    domain = normalize_server(server)
    if not username:
        raise InvalidArgument("a username is required to log in (-u USER)")
    if not password:
        raise InvalidArgument("a password is required to log in (-p, --password-stdin or the prompt)")
    with RegistryClient(domain, settings, credentials=Credentials(username, password)) as client:
        client.check_login()
    CredentialStore(settings).save(domain, username, password)
    return "Login Succeeded"


def logout(server: str | None, *, settings: RegistrySettings | None = None) -> str:
    settings = settings or RegistrySettings.load()
    domain = normalize_server(server)
    store = CredentialStore(settings)
    if store.remove(domain):
        return f"Removing login credentials for {domain}"
    if store.get(domain) is not None:
        return (
            f"Not logged in to {domain} with strata; the credentials Strata uses for it are Docker's "
            f"({settings.docker_config}): use `docker logout {domain}`"
        )
    return f"Not logged in to {domain}"
