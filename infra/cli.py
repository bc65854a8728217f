"""The `malestrom` command.

::

    malestrom up [--host H] [--port P] [--data-dir D] [--simulate N]   the whole system
    malestrom db upgrade [--data-dir D]                                 apply migrations
    malestrom news2 score INPUT.csv [-o OUTPUT.csv]                     batch NEWS2 scoring
    malestrom dlq list [--bootstrap B]                                  dead letters, with errors
    malestrom dlq replay [--id P:O ...] [--bootstrap B]                 re-feed after a fix
    malestrom worker | api | simulate                                   the supervised children
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

if TYPE_CHECKING:
    from ingestion.topics import Topics

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
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
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--data-dir", type=Path, default=None)
    dlq = sub.add_parser("dlq", help="dead letters: `malestrom dlq list` / `dlq replay`")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--id", action="append", default=[], help="replay only this id (P:O)")
    dlq.add_argument("--bootstrap", default=None, help="Kafka bootstrap (else from settings)")
    sub.add_parser("news2", help="NEWS2 tools: `malestrom news2 score INPUT.csv [-o OUT.csv]`")
    sub.add_parser("worker", help="run the streams worker (supervised by `up`)")
    api = sub.add_parser("api", help="run the API server (supervised by `up`)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    sim = sub.add_parser("simulate", help="send synthetic readings to a running API")
    sim.add_argument("--url", required=True)
    sim.add_argument("-n", type=int, default=10)
    sim.add_argument("--interval", type=float, default=30.0)
    return parser


def _data_dir(value: Path | None) -> Path:
    return value or Path(platformdirs.user_data_dir("malestrom"))


def _up(args: argparse.Namespace) -> int:
    from infra.settings import UpSettings
    from infra.supervisor import UpOptions, run_up

    options = UpOptions(args.host, args.port, _data_dir(args.data_dir), args.simulate)
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

    app = create_app(ApiSettings(), expected_migrations=migration_ids())
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from infra.simulator import run_simulator

    run_simulator(args.url, args.n, interval_s=args.interval)
    return 0


def _dlq_target(args: argparse.Namespace) -> tuple[str, Topics]:
    from infra.settings import UpSettings
    from ingestion.topics import Topics

    settings = UpSettings()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        raise SystemExit("malestrom dlq: give --bootstrap or set MALESTROM_KAFKA_BOOTSTRAP")
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
}

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    sys.exit(main())
