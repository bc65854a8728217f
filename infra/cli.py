"""The `malestrom` command.

::

    malestrom up [--host H] [--port P] [--data-dir D] [--simulate N]   the whole system
    malestrom dev-proxy [--port P] [--upstream URL] [--read-as ROLE]     FHIR clients, no DPoP
    malestrom db upgrade [--data-dir D]                                 apply migrations
    malestrom news2 score INPUT.csv [-o OUTPUT.csv]                     batch NEWS2 scoring
    malestrom dlq list [--bootstrap B | --data-dir D]                   dead letters, with errors
    malestrom dlq replay [--id P:O ...] [--bootstrap B]                 re-feed after a fix
    malestrom dev-issuer --dir D [--issuer URL]                         a development issuer
    malestrom token --role R [--org ORGNR] [--pid FNR]                 a development token
    malestrom call METHOD PATH [--role R] [--data FILE]                 a DPoP-signed request
    malestrom worker | api | simulate                                   the supervised children
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from infra.logs import configure_logging

if TYPE_CHECKING:
    from fastapi import APIRouter

    from api.settings import ApiSettings
    from infra.devissuer import DevIssuer, Minted
    from ingestion.topics import Topics

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    configure_logging()
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "news2":
        from news2.cli import main as news2_main

        if not rest or rest[0] != "score":
            parser.error("usage: malestrom news2 score INPUT.csv [-o OUTPUT.csv]")
        return news2_main(rest[1:], prog="malestrom news2 score")
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    name = {"db": "db upgrade", "dlq": f"dlq {getattr(args, 'action', '')}"}.get(args.command)
    handler = _COMMANDS[name or args.command]
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="malestrom", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole system on this machine")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--data-dir", type=Path, default=None)
    up.add_argument("--simulate", type=int, default=0, metavar="N")
    up.add_argument(
        "--dev-proxy-port", type=int, default=None, metavar="P",
        help="the development proxy's port on 127.0.0.1 (default: --port + 1; 0: none)",
    )  # fmt: skip
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--data-dir", type=Path, default=None)
    dlq = sub.add_parser("dlq", help="dead letters: `malestrom dlq list` / `dlq replay`")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--id", action="append", default=[], help="replay only this id (P:O)")
    dlq.add_argument("--bootstrap", default=None, help="Kafka bootstrap (else from settings)")
    dlq.add_argument("--data-dir", type=Path, default=None, help="find `up`'s embedded broker")
    sub.add_parser("news2", help="NEWS2 tools: `malestrom news2 score INPUT.csv [-o OUT.csv]`")
    sub.add_parser("worker", help="run the streams worker (supervised by `up`)")
    api = sub.add_parser("api", help="run the API server (supervised by `up`)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    sim = sub.add_parser("simulate", help="send synthetic readings to a running API")
    sim.add_argument("--url", required=True)
    sim.add_argument("-n", type=int, default=10)
    sim.add_argument("--interval", type=float, default=30.0)
    sim.add_argument("--data-dir", type=Path, default=None)
    proxy = sub.add_parser(
        "dev-proxy", help="development only: forward plain FHIR clients, signing with DPoP"
    )
    proxy.add_argument("--port", type=int, default=8081, help="listens on 127.0.0.1 only")
    proxy.add_argument("--upstream", default="http://127.0.0.1:8080", help="the API's base URL")
    proxy.add_argument(
        "--read-as", choices=["nurse", "clinician", "admin"], default="nurse",
        help="the role that signs everything but readings sent in (those go as the hub)",
    )  # fmt: skip
    proxy.add_argument("--data-dir", type=Path, default=None)
    dev = sub.add_parser("dev-issuer", help="create the development issuer; print its settings")
    dev.add_argument("--dir", type=Path, required=True)
    dev.add_argument("--issuer", default=None, help="its identifier (an URL ending /dev/issuer)")
    token = sub.add_parser("token", help="a development token and its DPoP key (JWK)")
    token.add_argument("--json", action="store_true", help="one JSON object instead of 2 lines")
    _token_options(token)
    call = sub.add_parser("call", help="send a DPoP-signed request to the running API")
    call.add_argument("method", help="GET, POST, PUT, …")
    call.add_argument("path", help="e.g. /api/v1/board or '/fhir/Observation?code=8867-4'")
    call.add_argument("--data", default=None, help="a file with the request body, or - (stdin)")
    call.add_argument("--content-type", default="application/json")
    call.add_argument("--stream", action="store_true", help="print a stream (SSE) as it comes")
    call.add_argument("--url", default="http://127.0.0.1:8080", help="the API's base URL")
    _token_options(call)
    return parser


def _token_options(parser: argparse.ArgumentParser) -> None:
    from infra.devissuer import ROLES

    parser.add_argument("--role", choices=sorted(ROLES), default="nurse")
    parser.add_argument("--org", default=None, help="organisation number (9 digits)")
    parser.add_argument("--pid", default=None, help="fødselsnummer (synthetic) of the person")
    parser.add_argument(
        "--scope", action="append", default=[], help="a scope name instead of the role's"
    )
    parser.add_argument("--lifetime", type=int, default=3600, help="seconds")
    parser.add_argument("--data-dir", type=Path, default=None)


def _data_dir(value: Path | None) -> Path:
    """``--data-dir``, else ``MALESTROM_DATA_DIR``, else the user's data directory."""
    named = os.environ.get("MALESTROM_DATA_DIR")
    return value or (Path(named) if named else Path(platformdirs.user_data_dir("malestrom")))


def _up(args: argparse.Namespace) -> int:
    from infra.settings import UpSettings
    from infra.supervisor import UpOptions, run_up

    proxy_port = args.port + 1 if args.dev_proxy_port is None else args.dev_proxy_port
    options = UpOptions(
        args.host, args.port, _data_dir(args.data_dir), args.simulate, dev_proxy_port=proxy_port
    )
    return run_up(options, UpSettings())


def _db_upgrade(args: argparse.Namespace) -> int:
    from infra.embedded import EmbeddedPostgres
    from infra.engine import EngineMismatchError, check_engine
    from infra.migrate import upgrade
    from infra.settings import UpSettings

    def migrate(url: str) -> list[str]:
        change = check_engine(url)[1]  # refuses before migrating what the engine cannot serve
        applied = upgrade(url)
        print("storage:", check_engine(url)[0], *([change] if change else []), sep="\n  ")  # noqa: T201
        return applied

    settings = UpSettings()
    try:
        if settings.database_url is not None:
            applied = migrate(settings.database_url.get_secret_value())
        else:
            postgres = EmbeddedPostgres(
                _data_dir(args.data_dir),
                engine=settings.engine,
                license=settings.timescaledb_license,
            )
            try:
                applied = migrate(postgres.start())
            finally:
                postgres.stop()
    except EngineMismatchError as exc:
        print(f"malestrom db upgrade: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print("applied:", ", ".join(applied) if applied else "nothing, up to date")  # noqa: T201
    return 0


def _worker(_args: argparse.Namespace) -> int:
    from streams.app import run_worker
    from streams.settings import StreamsSettings

    run_worker(StreamsSettings())
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from api.settings import ApiSettings
    from infra.migrate import migration_ids

    settings = ApiSettings()
    app = create_app(
        settings, expected_migrations=migration_ids(), extra_routers=_dev_routers(settings)
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,  # our request log (api.requests_log) instead: route templates only
        log_config=None,  # keep infra.logs' one format
        use_colors=False,
    )
    return 0


def _dev_routers(settings: ApiSettings) -> tuple[APIRouter, ...]:
    """The development issuer's login pages, when the API runs in development with it."""
    import os

    from api.settings import Environment
    from infra.devissuer import DevIssuer
    from infra.devissuer_web import dev_issuer_router

    directory = os.environ.get("MALESTROM_DEV_ISSUER_DIR")
    if settings.env is not Environment.DEVELOPMENT or not directory:
        return ()
    return (dev_issuer_router(DevIssuer.ensure(Path(directory))),)


def _dev_proxy(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from infra.devproxy import create_dev_proxy
    from infra.settings import UpSettings

    if not UpSettings().allows_dev_proxy:
        raise SystemExit(
            "malestrom dev-proxy: development only (MALESTROM_ENV=development, the development "
            "issuer, MALESTROM_IDENTITY_MODE=test); it refuses to run here"
        )
    public_url = os.environ.get("MALESTROM_PUBLIC_URL")
    app = create_dev_proxy(
        args.upstream,
        _dev_issuer(args),
        port=args.port,
        read_role=args.read_as,
        public_url=public_url,
    )
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", log_config=None,
        access_log=False, use_colors=False,
    )  # fmt: skip
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from infra.simulator import run_simulator

    fleet = _data_dir(args.data_dir) / "simulator" / "fleet.json"  # the same patients each run
    run_simulator(args.url, args.n, _dev_issuer(args), interval_s=args.interval, fleet_file=fleet)
    return 0


def _dev_issuer(args: argparse.Namespace) -> DevIssuer:
    """The development issuer that `malestrom up` made (or the one named by the environment)."""
    from infra.devissuer import find_dev_issuer

    try:
        return find_dev_issuer(args.data_dir)
    except FileNotFoundError as exc:
        raise SystemExit(f"malestrom: {exc}") from exc


def _create_dev_issuer(args: argparse.Namespace) -> int:
    from infra.devissuer import DevIssuer

    issuer = DevIssuer.ensure(args.dir, args.issuer)
    for name, value in issuer.env().items():
        print(f"{name}={value}")  # noqa: T201 - the command's output
    return 0


def _token(args: argparse.Namespace) -> int:
    minted = _mint(args)
    key = minted.key.as_dict(private=True)
    if args.json:  # for scripts: one JSON object with the token and its key
        out = {"token_type": "DPoP", "access_token": minted.token, "dpop_jwk": key}
        print(json.dumps(out))  # noqa: T201 - the command's output
        return 0
    print(minted.token)  # noqa: T201 - the command's output
    print(json.dumps(key))  # noqa: T201
    return 0


def _mint(args: argparse.Namespace) -> Minted:
    try:
        return _dev_issuer(args).mint(
            args.role,
            org=args.org,
            pid=args.pid,
            scopes=tuple(args.scope) or None,
            lifetime_s=args.lifetime,
        )
    except ValueError as exc:
        raise SystemExit(f"malestrom: {exc}") from exc


def _stream(client: Any, method: str, path: str, request: dict[str, Any]) -> int:
    """Print a stream's lines as they come; Ctrl-C or the server going away ends it quietly."""
    import httpx

    try:
        with client.stream(method, path, **request) as response:
            print(f"HTTP {response.status_code}", file=sys.stderr)  # noqa: T201
            for line in response.iter_lines():
                print(line, flush=True)  # noqa: T201 - the command's output
    except KeyboardInterrupt:
        return 0
    except httpx.TransportError as exc:
        print(f"malestrom call: the stream ended: {type(exc).__name__}", file=sys.stderr)  # noqa: T201
        return 1
    return 0 if response.is_success else 1


def _call(args: argparse.Namespace) -> int:
    import httpx

    minted = _mint(args)
    headers = {"Content-Type": args.content_type}
    body = Path(args.data).read_bytes() if args.data else None
    if args.data == "-":
        body = sys.stdin.buffer.read()
    request: dict[str, Any] = {"content": body, "headers": headers, "auth": minted.auth()}
    with httpx.Client(base_url=args.url, timeout=httpx.Timeout(30.0, read=None)) as client:
        if args.stream:  # Server-Sent Events: print each line as it arrives, until Ctrl-C
            return _stream(client, args.method.upper(), args.path, request)
        response = client.request(args.method.upper(), args.path, **request)
    print(f"HTTP {response.status_code}", file=sys.stderr)  # noqa: T201 - the command's output
    try:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))  # noqa: T201
    except ValueError:
        print(response.text)  # noqa: T201
    return 0 if response.is_success else 1


def _dlq_target(args: argparse.Namespace) -> tuple[str, Topics]:
    from infra.settings import UpSettings
    from infra.supervisor import BROKER_ADDRESS
    from ingestion.topics import Topics

    settings = UpSettings()
    embedded = _data_dir(args.data_dir) / "run" / BROKER_ADDRESS  # while `malestrom up` runs
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap and embedded.exists():
        bootstrap = embedded.read_text().strip()
    if not bootstrap:
        raise SystemExit(
            "malestrom dlq: give --bootstrap or set MALESTROM_KAFKA_BOOTSTRAP (or run it beside "
            "`malestrom up`, with the same --data-dir)"
        )
    return bootstrap, Topics(settings.topic_prefix)


def _dlq_list(args: argparse.Namespace) -> int:
    from infra.dlq import list_dead_letters

    bootstrap, topics = _dlq_target(args)
    letters = list_dead_letters(bootstrap, topics)
    for d in letters:  # ids, stages and errors only: never the record's content
        print(  # noqa: T201 - the command's output
            f"{d.id}\t{d.header('dlq-stage')}\t{d.header('dlq-failed-at')}\t"
            f"{d.header('dlq-error-type')}: {d.header('dlq-error')}"
        )
    print(f"{len(letters)} dead letter(s) in {topics.readings_dlq}")  # noqa: T201
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from infra.dlq import replay_dead_letters

    bootstrap, topics = _dlq_target(args)
    replayed = replay_dead_letters(bootstrap, topics, ids=args.id)
    for d in replayed:
        print(f"replayed {d.id} to {d.header('dlq-topic')}")  # noqa: T201 - the command's output
    print(f"{len(replayed)} dead letter(s) replayed")  # noqa: T201
    return 0


_COMMANDS = {
    "up": _up,
    "dlq list": _dlq_list,
    "dlq replay": _dlq_replay,
    "db upgrade": _db_upgrade,
    "worker": _worker,
    "api": _api,
    "simulate": _simulate,
    "dev-proxy": _dev_proxy,
    "token": _token,
    "dev-issuer": _create_dev_issuer,
    "call": _call,
}

if __name__ == "__main__":
    sys.exit(main())
