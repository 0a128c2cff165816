"""``Logger``: log targets, levels, logging configs, the async API, reopening files."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.logging import AccessLogAtoms, Logger
from hypercorn.shared.validators import ConfigError

ERROR_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[([A-Z]+)\] (.*)")

SCOPE: dict[str, Any] = {
    "type": "http",
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items",
    "raw_path": b"/items",
    "query_string": b"page=2",
    "headers": [(b"host", b"localhost"), (b"user-agent", b"pytest")],
    "client": ("127.0.0.1", 40000),
}
RESPONSE: dict[str, Any] = {"status": 200, "headers": [(b"x-id", b"7")], "body_size": 11}


def _all_loggers() -> list[logging.Logger]:
    loggers = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(lg for lg in loggers if isinstance(lg, logging.Logger))]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Logging state is global: undo every logger change a test makes, closing new handlers."""
    saved = {lg: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in _all_loggers()}
    yield
    for logger in _all_loggers():
        handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


class Records(logging.Handler):
    """Keeps the records it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def build(**settings: Any) -> Logger:
    return Logger(Config.from_mapping(settings))


def error_lines(text: str) -> list[tuple[str, str]]:
    lines = []
    for line in text.splitlines():
        match = ERROR_LINE.fullmatch(line)
        assert match, line
        lines.append((match[2], match[3]))
    return lines


class TestDefaults:
    @pytest.mark.asyncio
    async def test_errors_go_to_stderr_and_no_access_log(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logger = build()
        assert logger.access_logger is None
        assert logger.error_logger is logging.getLogger("hypercorn.error")
        await logger.access(SCOPE, RESPONSE, 0.01)
        await logger.info("ready on %s", "port 8000")
        await logger.debug("not shown")
        out, err = capsys.readouterr()
        assert out == ""
        assert error_lines(err) == [("INFO", "ready on port 8000")]

    def test_config_log_builds_the_configured_class(self) -> None:
        class Custom(Logger):
            pass

        config = Config()
        config.logger_class = Custom
        assert type(config.log) is Custom
        assert config.log is config.log

    def test_error_line_carries_the_pid(self, capsys: pytest.CaptureFixture[str]) -> None:
        build().error_logger.warning("sync")
        match = ERROR_LINE.fullmatch(capsys.readouterr().err.strip())
        assert match and int(match[1]) > 0


class TestAccessTargets:
    @pytest.mark.asyncio
    async def test_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(accesslog="-", access_log_format="%(h)s %(R)s %(s)s %(b)s %(D)s")
        await logger.access(SCOPE, RESPONSE, 0.5)
        out, err = capsys.readouterr()
        assert out == "127.0.0.1:40000 GET /items?page=2 1.1 200 11 500000\n"
        assert err == ""

    @pytest.mark.asyncio
    async def test_header_atoms(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(accesslog="-", access_log_format="%({User-Agent}i)s %({X-ID}o)s")
        await logger.access(SCOPE, RESPONSE, 0)
        assert capsys.readouterr().out == "pytest 7\n"

    @pytest.mark.asyncio
    async def test_default_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(accesslog="-")
        await logger.access(SCOPE, RESPONSE, 0)
        line = capsys.readouterr().out
        assert re.fullmatch(
            r'127\.0\.0\.1:40000 - - \[[^]]+\] "GET /items 1\.1" 200 11 "-" "pytest"\n',
            line,
        )

    @pytest.mark.asyncio
    async def test_file_appends(self, tmp_path: Path) -> None:
        path = tmp_path / "access.log"
        path.write_text("earlier\n")
        logger = build(accesslog=str(path), access_log_format="%(m)s %(U)s")
        await logger.access(SCOPE, RESPONSE, 0)
        logger.access_sync(SCOPE, None, 0)
        logger.close()
        assert path.read_text() == "earlier\nGET /items\nGET /items\n"

    @pytest.mark.asyncio
    async def test_logger_instance_is_used_as_is(self) -> None:
        mine = logging.getLogger("tests.access")
        mine.setLevel(logging.INFO)
        records = Records()
        mine.addHandler(records)
        logger = build(accesslog=mine, access_log_format="%(s)s")
        assert logger.access_logger is mine
        await logger.access(SCOPE, {"status": 204, "headers": []}, 0)
        assert [r.getMessage() for r in records.records] == ["204"]
        assert isinstance(records.records[0].args, AccessLogAtoms)

    @pytest.mark.asyncio
    async def test_access_log_ignores_the_error_level(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logger = build(accesslog="-", loglevel="ERROR", access_log_format="%(s)s")
        await logger.access(SCOPE, RESPONSE, 0)
        await logger.warning("hidden")
        assert capsys.readouterr() == ("200\n", "")

    @pytest.mark.asyncio
    async def test_overridden_atoms(self, capsys: pytest.CaptureFixture[str]) -> None:
        class Tagged(Logger):
            def atoms(self, request: Any, response: Any, request_time: float) -> dict[str, Any]:
                atoms = AccessLogAtoms(request, response, request_time)
                atoms["tag"] = "T1"
                return atoms

        logger = Tagged(Config.from_mapping(accesslog="-", access_log_format="%(tag)s %(s)s"))
        await logger.access(SCOPE, RESPONSE, 0)
        assert capsys.readouterr().out == "T1 200\n"

    def test_unwritable_file_is_a_config_error(self, tmp_path: Path) -> None:
        target = tmp_path / "missing" / "access.log"
        with pytest.raises(ConfigError, match=re.escape(str(target))):
            build(accesslog=str(target))

    @pytest.mark.asyncio
    async def test_a_new_logger_replaces_the_previous_handlers(self, tmp_path: Path) -> None:
        first, second = tmp_path / "first.log", tmp_path / "second.log"
        build(accesslog=str(first), access_log_format="%(s)s")
        logger = build(accesslog=str(second), access_log_format="%(s)s")
        # Only the newest file handler is left, and it is the log's first handler
        # (a test runner may attach handlers of its own after it).
        handlers = logging.getLogger("hypercorn.access").handlers
        files = [h for h in handlers if isinstance(h, logging.FileHandler)]
        assert len(files) == 1 and handlers[0] is files[0]
        assert files[0].baseFilename == str(second)
        await logger.access(SCOPE, RESPONSE, 0)
        logger.close()
        assert (first.read_text(), second.read_text()) == ("", "200\n")

    @pytest.mark.asyncio
    async def test_disabling_removes_the_previous_handlers(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        build(accesslog="-")
        logger = build(accesslog=None)
        assert logger.access_logger is None
        logging.getLogger("hypercorn.access").info("stray")
        assert capsys.readouterr().out == ""


class TestErrorTargets:
    @pytest.mark.asyncio
    async def test_file(self, tmp_path: Path) -> None:
        path = tmp_path / "error.log"
        logger = build(errorlog=str(path))
        await logger.error("failed: %d", 3)
        logger.close()
        assert error_lines(path.read_text()) == [("ERROR", "failed: 3")]

    @pytest.mark.asyncio
    async def test_logger_instance(self) -> None:
        mine = logging.getLogger("tests.error")
        mine.setLevel(logging.DEBUG)
        records = Records()
        mine.addHandler(records)
        logger = build(errorlog=mine)
        assert logger.error_logger is mine
        await logger.debug("detail")
        assert [r.getMessage() for r in records.records] == ["detail"]

    @pytest.mark.asyncio
    async def test_none_is_silent(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(errorlog=None)
        assert logger.error_logger is not None
        await logger.critical("nobody hears this")
        logger.error_logger.error("nor this")
        assert capsys.readouterr() == ("", "")

    @pytest.mark.parametrize(
        ("level", "shown"),
        [
            ("DEBUG", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
            ("info", ["INFO", "WARNING", "ERROR", "CRITICAL"]),
            ("WARNING", ["WARNING", "ERROR", "CRITICAL"]),
            ("error", ["ERROR", "CRITICAL"]),
            ("CRITICAL", ["CRITICAL"]),
        ],
    )
    @pytest.mark.asyncio
    async def test_loglevel(
        self, level: str, shown: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        logger = build(loglevel=level)
        await logger.debug("m")
        await logger.info("m")
        await logger.warning("m")
        await logger.error("m")
        await logger.critical("m")
        assert [name for name, _ in error_lines(capsys.readouterr().err)] == shown

    @pytest.mark.asyncio
    async def test_debug_setting_shows_debug(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(loglevel="WARNING", debug=True)
        await logger.debug("verbose")
        assert error_lines(capsys.readouterr().err) == [("DEBUG", "verbose")]


class TestAsyncApi:
    @pytest.fixture
    def records(self) -> Iterator[Records]:
        mine = logging.getLogger("tests.api")
        mine.setLevel(logging.DEBUG)
        records = Records()
        mine.addHandler(records)
        yield records

    @pytest.mark.asyncio
    async def test_every_level(self, records: Records) -> None:
        logger = build(errorlog=logging.getLogger("tests.api"))
        await logger.critical("c %s", 1)
        await logger.error("e %s", 2)
        await logger.warning("w %s", 3)
        await logger.info("i %s", 4)
        await logger.debug("d %s", 5)
        await logger.log(logging.WARNING, "l %s", 6)
        assert [(r.levelname, r.getMessage()) for r in records.records] == [
            ("CRITICAL", "c 1"),
            ("ERROR", "e 2"),
            ("WARNING", "w 3"),
            ("INFO", "i 4"),
            ("DEBUG", "d 5"),
            ("WARNING", "l 6"),
        ]

    @pytest.mark.asyncio
    async def test_exception_carries_the_traceback(self, records: Records) -> None:
        logger = build(errorlog=logging.getLogger("tests.api"))
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            await logger.exception("while serving")
        (record,) = records.records
        assert record.levelname == "ERROR"
        assert record.exc_info is not None and record.exc_info[0] is RuntimeError

    @pytest.mark.asyncio
    async def test_records_name_the_caller(self, records: Records) -> None:
        logger = build(errorlog=logging.getLogger("tests.api"))
        await logger.info("where")
        await logger.log(logging.INFO, "where", extra={"metric": "m"})
        for record in records.records:
            assert record.funcName == "test_records_name_the_caller"
            assert record.pathname == __file__
        assert records.records[1].__dict__["metric"] == "m"

    def test_other_names_forward_to_the_error_logger(self) -> None:
        logger = build(loglevel="WARNING")
        assert logger.isEnabledFor(logging.WARNING)
        assert not logger.isEnabledFor(logging.INFO)
        assert logger.name == "hypercorn.error"


class TestLogConfig:
    def test_ini(self, tmp_path: Path) -> None:
        ini = tmp_path / "logging.ini"
        ini.write_text(
            "[loggers]\nkeys=root,error\n\n"
            "[handlers]\nkeys=file\n\n"
            "[formatters]\nkeys=plain\n\n"
            "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
            "[logger_error]\nlevel=DEBUG\nhandlers=file\npropagate=0\nqualname=hypercorn.error\n\n"
            "[handler_file]\nclass=FileHandler\nformatter=plain\n"
            "args=('%(here)s/from-ini.log', 'a')\n\n"
            "[formatter_plain]\nformat=%(levelname)s %(message)s\n"
        )
        logger = build(logconfig=str(ini))
        logger.error_logger.debug("configured by ini")
        for handler in logger.error_logger.handlers:
            handler.flush()
        assert (tmp_path / "from-ini.log").read_text() == "DEBUG configured by ini\n"

    @pytest.mark.parametrize("kind", ["json", "toml"])
    @pytest.mark.asyncio
    async def test_json_and_toml(
        self, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / f"logging.{kind}"
        if kind == "json":
            path.write_text(
                json.dumps(
                    {
                        "version": 1,
                        "formatters": {"bare": {"format": "%(message)s!"}},
                        "handlers": {
                            "out": {
                                "class": "logging.StreamHandler",
                                "formatter": "bare",
                                "stream": "ext://sys.stdout",
                            }
                        },
                        "loggers": {"hypercorn.access": {"handlers": ["out"], "propagate": False}},
                    }
                )
            )
        else:
            path.write_text(
                "version = 1\n"
                "[formatters.bare]\nformat = '%(message)s!'\n"
                "[handlers.out]\nclass = 'logging.StreamHandler'\nformatter = 'bare'\n"
                "stream = 'ext://sys.stdout'\n"
                "[loggers.'hypercorn.access']\nhandlers = ['out']\npropagate = false\n"
                "level = 'INFO'\n"
            )
        # The access log is off in the settings, but the log config gives it a handler.
        logger = build(logconfig=f"{kind}:{path}", access_log_format="%(s)s")
        assert logger.access_logger is logging.getLogger("hypercorn.access")
        await logger.access(SCOPE, RESPONSE, 0)
        assert capsys.readouterr().out == "200!\n"

    @pytest.mark.asyncio
    async def test_dict(self) -> None:
        records = Records()
        logger = build(
            logconfig_dict={
                "version": 1,
                "handlers": {"keep": {"()": lambda: records}},
                "loggers": {"hypercorn.error": {"handlers": ["keep"], "level": "DEBUG"}},
            }
        )
        await logger.debug("from dict")
        assert [r.getMessage() for r in records.records] == ["from dict"]

    def test_dict_keeps_other_loggers_enabled(self) -> None:
        app_logger = logging.getLogger("tests.app")
        build(logconfig_dict={"version": 1})
        assert not app_logger.disabled
        build(logconfig_dict={"version": 1, "disable_existing_loggers": True})
        assert app_logger.disabled

    def test_missing_file(self, tmp_path: Path) -> None:
        for value in (str(tmp_path / "nope.ini"), f"json:{tmp_path}/nope.json"):
            with pytest.raises(ConfigError, match="nope"):
                build(logconfig=value)

    @pytest.mark.parametrize(
        ("name", "text", "prefix"),
        [
            ("bad.ini", "[loggers]\nkeys=root\n", ""),
            ("bad.json", "{not json", "json:"),
            ("list.json", "[1, 2]", "json:"),
            ("bad.toml", "version = ", "toml:"),
            ("wrong.toml", "version = 2", "toml:"),
        ],
    )
    def test_bad_file_is_a_config_error(
        self, name: str, text: str, prefix: str, tmp_path: Path
    ) -> None:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(str(path))):
            build(logconfig=prefix + str(path))

    def test_bad_dict_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="logconfig_dict"):
            build(logconfig_dict={"version": 1, "handlers": {"h": {"class": "no.such.Class"}}})


class TestReopenFiles:
    @pytest.mark.asyncio
    async def test_rotation(self, tmp_path: Path) -> None:
        access, error = tmp_path / "access.log", tmp_path / "error.log"
        logger = build(accesslog=str(access), errorlog=str(error), access_log_format="%(q)s")
        await logger.access(SCOPE, RESPONSE, 0)
        await logger.warning("before")
        access.rename(tmp_path / "access.log.1")
        error.rename(tmp_path / "error.log.1")
        await logger.access({**SCOPE, "query_string": b"late"}, RESPONSE, 0)
        logger.reopen_files()
        await logger.access({**SCOPE, "query_string": b"after"}, RESPONSE, 0)
        await logger.warning("after")
        logger.close()
        assert (tmp_path / "access.log.1").read_text() == "page=2\nlate\n"
        assert access.read_text() == "after\n"
        assert [m for _, m in error_lines((tmp_path / "error.log.1").read_text())] == ["before"]
        assert [m for _, m in error_lines(error.read_text())] == ["after"]

    def test_without_files(self, capsys: pytest.CaptureFixture[str]) -> None:
        logger = build(accesslog="-")
        logger.reopen_files()
        logger.error_logger.warning("still here")
        assert "still here" in capsys.readouterr().err
