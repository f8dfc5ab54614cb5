"""Glue interactive sessions and their statements, run locally.

A Glue session is a Python interpreter next to a Spark driver; a statement is a piece of Python
code run in that interpreter, whose printed output comes back in `Output.Data.TextPlain`. Here a
session is a namespace (its own globals, like the REPL of a real session) plus its own Spark
session (`SparkSession.newSession()`: own SQL conf, temporary views and catalog caches, one shared
JVM and metastore), and statements run one at a time on the session's own thread, as on Glue.

What Glue does and is kept:
- `Code` longer than 68,000 characters is refused (ValidationException), before anything runs;
- an exception in the code ends the statement `AVAILABLE` with `Output.Status` 'error' and
  `ErrorName` / `ErrorValue` / `Traceback` (how dbt-glue reads failures);
- every statement is time-bound: past its deadline the stand-in cancels its Spark jobs and ends it
  in ERROR, so a caller polling GetStatement can never wait forever.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import logging
import sys
import threading
import traceback
import types
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Glue's documented limit on RunStatement's Code (API reference: Length Constraints 0-68000).
MAX_CODE_CHARS = 68_000
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 900.0


class GlueError(Exception):
    """An error answered the way Glue answers it: HTTP 400 and a typed JSON body."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _epoch_seconds(moment: dt.datetime | None) -> float:
    """Timestamps in Glue's JSON protocol are epoch seconds."""
    return round(moment.timestamp(), 3) if moment else 0.0


@dataclass
class Statement:
    id: int
    code: str
    deadline: float
    state: str = "WAITING"
    output: dict[str, Any] | None = None
    started_on: dt.datetime | None = None
    completed_on: dt.datetime | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, state: str, output: dict[str, Any]) -> bool:
        """Record the outcome once; a statement already ended (timed out) keeps its first end."""
        if self.done.is_set():
            return False
        self.state, self.output, self.completed_on = state, output, _now()
        self.done.set()
        return True

    def as_api(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "Id": self.id,
            "Code": self.code,
            "State": self.state,
            "Progress": 1.0 if self.done.is_set() else 0.0,
            "StartedOn": _epoch_seconds(self.started_on),
            "CompletedOn": _epoch_seconds(self.completed_on),
        }
        if self.output is not None:
            answer["Output"] = self.output
        return answer


def _awsglue_stub() -> types.ModuleType:
    """The few `awsglue` names code sent by dbt-glue imports (its SQLPROXY preamble)."""
    package = types.ModuleType("awsglue")
    utils = types.ModuleType("awsglue.utils")

    def get_resolved_options(args: list[str], options: list[str]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for option in options:
            flag = f"--{option}"
            if flag not in args or args.index(flag) + 1 >= len(args):
                raise RuntimeError(f"the following arguments are required: {flag}")
            resolved[option] = args[args.index(flag) + 1]
        return resolved

    utils.getResolvedOptions = get_resolved_options  # type: ignore[attr-defined]
    context = types.ModuleType("awsglue.context")

    class GlueContext:
        """Enough of awsglue.context.GlueContext for code that only reaches its Spark session."""

        def __init__(self, spark_context: Any, spark_session: Any = None) -> None:
            self._sc = spark_context
            self.spark_session = spark_session

    context.GlueContext = GlueContext  # type: ignore[attr-defined]
    package.utils = utils  # type: ignore[attr-defined]
    package.context = context  # type: ignore[attr-defined]
    return package


class _MissingPandas(types.ModuleType):
    """What `import pandas` gives the statements' code when pandas is not installed.

    Glue ships pandas and dbt-glue's preamble imports it, but uses it only with `use_arrow`
    (results through S3), which the stand-in does not offer. Only the statements' own imports
    get this (see `_statement_builtins`): PySpark itself still sees that pandas is missing.
    """

    def __getattr__(self, name: str) -> Any:
        raise ModuleNotFoundError(
            f"pandas.{name}: pandas is not installed next to the Glue stand-in "
            "(dbt-glue needs it only for use_arrow, which the stand-in does not support)"
        )


def _statement_builtins() -> dict[str, Any]:
    import builtins
    import importlib.util

    real_import = builtins.__import__
    pandas_missing = importlib.util.find_spec("pandas") is None

    def statement_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if pandas_missing and name.split(".")[0] == "pandas":
            return _MissingPandas("pandas")
        return real_import(name, *args, **kwargs)

    return {**builtins.__dict__, "__import__": statement_import}


def install_awsglue_stub() -> None:
    if "awsglue" in sys.modules:
        return
    package = _awsglue_stub()
    sys.modules["awsglue"] = package
    sys.modules["awsglue.utils"] = package.utils
    sys.modules["awsglue.context"] = package.context


class GlueSession:
    """One Glue interactive session: a namespace, a Spark session, a statement queue."""

    def __init__(
        self,
        session_id: str,
        request: dict[str, Any],
        spark_factory: Callable[[dict[str, str]], Any] | None,
        statement_timeout: float,
    ) -> None:
        self.id = session_id
        self.request = request
        self.created_on = _now()
        self.status = "PROVISIONING"
        self.error_message: str | None = None
        self.statements: list[Statement] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"glue-{session_id[:24]}"
        )
        timeout_minutes = request.get("Timeout")
        self.statement_timeout = min(
            statement_timeout, float(timeout_minutes) * 60 if timeout_minutes else statement_timeout
        )
        self.conf = parse_conf(request.get("DefaultArguments", {}).get("--conf", ""))
        self.spark: Any = None
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": _statement_builtins(),
        }
        try:
            if spark_factory is not None:
                self.spark = spark_factory(self.conf)
                install_awsglue_stub()
                from awsglue.context import GlueContext

                self.namespace.update(
                    spark=self.spark,
                    sc=self.spark.sparkContext,
                    glueContext=GlueContext(self.spark.sparkContext, self.spark),
                )
            self.status = "READY"
        except Exception as error:  # a session that cannot start is FAILED, as on Glue
            log.exception("session %s failed to start", session_id)
            self.status = "FAILED"
            self.error_message = f"{type(error).__name__}: {error}"

    # -- API answers -----------------------------------------------------------------------
    def as_api(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "Id": self.id,
            "CreatedOn": _epoch_seconds(self.created_on),
            "Status": self.status,
            "Role": self.request.get("Role", ""),
            "Command": self.request.get("Command", {"Name": "glueetl", "PythonVersion": "3"}),
            "DefaultArguments": self.request.get("DefaultArguments", {}),
            "GlueVersion": self.request.get("GlueVersion", "5.0"),
            "NumberOfWorkers": self.request.get("NumberOfWorkers", 2),
            "WorkerType": self.request.get("WorkerType", "G.1X"),
            "IdleTimeout": self.request.get("IdleTimeout", 10),
        }
        if self.error_message:
            answer["ErrorMessage"] = self.error_message
        return answer

    def run(self, code: str) -> int:
        if len(code) > MAX_CODE_CHARS:
            raise GlueError(
                "ValidationException",
                f"1 validation error detected: Value at 'code' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_CODE_CHARS} "
                f"(got {len(code):,} characters)",
            )
        if self.status != "READY":
            raise GlueError(
                "IllegalSessionStateException", f"Session {self.id} is {self.status}, not READY"
            )
        import time

        with self._lock:
            statement = Statement(
                id=next(self._ids), code=code, deadline=time.monotonic() + self.statement_timeout
            )
            self.statements.append(statement)
        self._runner.submit(self._execute, statement)
        return statement.id

    def get(self, statement_id: int, wait_seconds: float = 0.0) -> Statement:
        try:
            statement = self.statements[statement_id]
        except (IndexError, TypeError) as error:
            raise GlueError(
                "EntityNotFoundException", f"Statement {statement_id} not found in {self.id}"
            ) from error
        import time

        remaining = statement.deadline - time.monotonic()
        if remaining <= 0 or (
            # Long poll: answer as soon as the statement ends (dbt-glue polls once a second).
            wait_seconds > 0
            and not statement.done.wait(min(wait_seconds, remaining))
            and statement.deadline - time.monotonic() <= 0
        ):
            self._time_out(statement)
        return statement

    def cancel(self, statement_id: int) -> None:
        statement = self.get(statement_id)
        if statement.done.is_set():
            return
        self._cancel_jobs(statement)
        statement.finish("CANCELLED", {"ExecutionCount": statement.id, "Status": "cancelled"})

    def stop(self) -> None:
        self.status = "STOPPED"
        for statement in self.statements:
            if not statement.done.is_set():
                self._cancel_jobs(statement)
                statement.finish(
                    "CANCELLED", {"ExecutionCount": statement.id, "Status": "cancelled"}
                )
        self._runner.shutdown(wait=False, cancel_futures=True)

    # -- execution -------------------------------------------------------------------------
    def _job_group(self, statement: Statement) -> str:
        return f"{self.id}-{statement.id}"

    def _cancel_jobs(self, statement: Statement) -> None:
        if self.spark is not None:
            try:
                self.spark.sparkContext.cancelJobGroup(self._job_group(statement))
            except Exception:  # the JVM may already be gone
                log.debug("cancel of %s failed", self._job_group(statement), exc_info=True)

    def _time_out(self, statement: Statement) -> None:
        self._cancel_jobs(statement)
        statement.finish(
            "ERROR",
            {
                "ExecutionCount": statement.id,
                "Status": "error",
                "ErrorName": "TimeoutError",
                "ErrorValue": f"Statement {statement.id} of session {self.id} did not finish "
                f"within {self.statement_timeout:.0f} s (the stand-in's statement timeout); "
                "its Spark jobs were cancelled",
                "Traceback": [],
            },
        )

    def _execute(self, statement: Statement) -> None:
        import time

        if statement.done.is_set():
            return
        if time.monotonic() >= statement.deadline:
            self._time_out(statement)
            return
        statement.state, statement.started_on = "RUNNING", _now()
        lines: list[str] = []

        def glue_print(*args: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
            lines.append(sep.join(str(a) for a in args) + end)

        self.namespace["print"] = glue_print
        if self.spark is not None:
            self.spark.sparkContext.setJobGroup(
                self._job_group(statement), f"statement {statement.id}", interruptOnCancel=True
            )
        try:
            value = _run_code(statement.code, self.namespace)
            if value is not None:
                lines.append(f"{value!r}\n")
            statement.finish(
                "AVAILABLE",
                {
                    "Data": {"TextPlain": "".join(lines)},
                    "ExecutionCount": statement.id,
                    "Status": "ok",
                },
            )
        except BaseException as error:
            statement.finish(
                "AVAILABLE",
                {
                    "Data": {"TextPlain": "".join(lines)},
                    "ExecutionCount": statement.id,
                    "Status": "error",
                    "ErrorName": type(error).__name__,
                    "ErrorValue": str(error),
                    "Traceback": traceback.format_exception(error),
                },
            )


def _run_code(code: str, namespace: dict[str, Any]) -> Any:
    """Run code like a REPL cell: statements, and the value of a final expression."""
    tree = ast.parse(code, mode="exec")
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body = tree.body[:-1]
        exec(compile(tree, "<statement>", "exec"), namespace)
        expression = ast.Expression(last.value)
        return eval(compile(expression, "<statement>", "eval"), namespace)
    exec(compile(tree, "<statement>", "exec"), namespace)
    return None


def parse_conf(value: str) -> dict[str, str]:
    """Glue's `--conf` argument: `k=v --conf k2=v2 ...` (how dbt-glue's profile `conf` arrives)."""
    conf: dict[str, str] = {}
    for part in value.split("--conf"):
        part = part.strip()
        if "=" in part:
            key, _, setting = part.partition("=")
            conf[key.strip()] = setting.strip()
    return conf


def new_session_id() -> str:
    return f"standin-{uuid.uuid4()}"
