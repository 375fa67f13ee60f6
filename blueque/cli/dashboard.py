"""`blueque dashboard`: the live web dashboard (`blueque.dashboard`), served by uvicorn.

Its packages come with the extra (`pip install 'blueque[dashboard]'`): they are imported only
when the command runs, so the rest of the CLI never loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from blueque import environment as env
from blueque.cli.app import DURATION, State, UserError, pass_state

if TYPE_CHECKING:
    from blueque.dashboard.settings import DashboardSettings

INSTALL = "pip install 'blueque[dashboard]'"


def _secret_file(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read {what} from {path}: {exc.strerror}") from None
    if not value:
        raise UserError(f"{path} is empty: no {what}")
    return value


HELP = f"""The live web dashboard: queues, running tasks, workers, finished tasks, live
events, config, and the operator's scaling. Binds 127.0.0.1 unless told otherwise. Reading
needs the token ({env.DASHBOARD_TOKEN}: a header or the login page's cookie) or basic auth
whenever one is set; serving another address without either is refused."""


@click.command(help=HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--url-prefix",
    default="",
    metavar="PATH",
    help="The path browsers reach the dashboard under (an ingress path, kubectl proxy's"
    " service path); requests may arrive with it or stripped.",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Another origin (scheme://host[:port]) a browser may act from, e.g. the one of"
    " kubectl proxy. Repeatable.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the token from this file (a mounted Secret) instead of {env.DASHBOARD_TOKEN}.",
)
@click.option(
    "--basic-user", metavar="NAME", help=f"HTTP basic auth as NAME with {env.DASHBOARD_PASSWORD}."
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the basic-auth password from this file instead of {env.DASHBOARD_PASSWORD}.",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Mount the action routes (cancel, retry, bulk retry). Read-only without it.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve a non-loopback address without auth (only behind a proxy that authenticates).",
)
@click.option("--secure-cookie", is_flag=True, help="Mark the login cookie Secure (https).")
@click.option("--queue", "queues", multiple=True, help="Show only this queue. Repeatable.")
@click.option(
    "--kube/--no-kube",
    default=None,
    help="The scaling view (BlueQueues, read-only): on, or off; by default on when a"
    " kubeconfig ($KUBECONFIG, ~/.kube/config) or a pod's service account is found.",
)
@click.option(
    "--kube-namespace",
    "kube_namespaces",
    multiple=True,
    metavar="NS",
    help="Read BlueQueues in this namespace only (repeatable; default: every namespace).",
)
@click.option(
    "--scaling-interval",
    **DURATION,
    default=5.0,
    show_default=True,
    help="How often the BlueQueues and their Events are read.",
)
@pass_state
def dashboard(
    state: State,
    host: str,
    port: int,
    url_prefix: str,
    allowed_origins: tuple[str, ...],
    token_file: Path | None,
    basic_user: str | None,
    password_file: Path | None,
    allow_actions: bool,
    insecure_no_auth: bool,
    secure_cookie: bool,
    queues: tuple[str, ...],
    kube: bool | None,
    kube_namespaces: tuple[str, ...],
    scaling_interval: float,
) -> None:
    try:
        import uvicorn

        from blueque.aio import AsyncClient
        from blueque.dashboard.app import create_app
        from blueque.dashboard.settings import DashboardSettings
    except ImportError as exc:
        raise UserError(
            f"the dashboard needs its extra ({exc.name} is missing): {INSTALL}"
        ) from None
    secrets = env.DashboardSecrets.from_env()
    settings = DashboardSettings(
        host=host,
        port=port,
        url_prefix=url_prefix,
        allowed_origins=allowed_origins,
        token=_secret_file(token_file, "the token") or secrets.token,
        basic_user=basic_user,
        basic_password=(_secret_file(password_file, "the password") or secrets.password)
        if basic_user
        else None,
        allow_actions=allow_actions,
        insecure_no_auth=insecure_no_auth,
        secure_cookie=secure_cookie,
        kube=kube,
        kube_namespaces=kube_namespaces,
        scaling_interval_s=scaling_interval,
    ).validated()
    r = state.redis

    def connect() -> AsyncClient:
        return AsyncClient(r.url, password=r.password, cluster=r.cluster, namespace=r.namespace)

    app = create_app(settings, connect, queues)
    click.echo(
        f"blueque dashboard on http://{host}:{port}{settings.prefix}/"
        f" ({'actions allowed' if allow_actions else 'read-only'},"
        f" auth: {_auth_words(settings)})",
        err=True,
    )
    # Open event streams never end by themselves: on SIGTERM they are cut after a second.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


def _auth_words(settings: DashboardSettings) -> str:
    token, basic = settings.token is not None, settings.basic_user is not None
    return " + ".join(w for w, on in (("token", token), ("basic", basic)) if on) or "none"


COMMANDS = (dashboard,)
