"""The stand-in's HTTP front on loopback: one port for the three services dbt-glue calls.

- Glue: AWS JSON 1.1, `POST /` with `X-Amz-Target: AWSGlue.<Operation>`; errors are HTTP 400 with
  `{"__type": <code>, "Message": ...}` (botocore maps the code to `client.exceptions.<code>`).
- STS: the query protocol (`Action=GetCallerIdentity`, form-encoded), answered in XML.
- Lake Formation: REST-JSON, `POST /<Operation>`; grants are accepted and recorded (no IAM here).

Point boto3 at it with AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL_STS /
AWS_ENDPOINT_URL_LAKEFORMATION = the stand-in's URL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lakehouse.glue_standin.catalog import CATALOG_ID, MemoryMetastore, Metastore
from lakehouse.glue_standin.sessions import (
    DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    GlueError,
    GlueSession,
)

log = logging.getLogger(__name__)

# The marker every answer carries, so a caller can tell the stand-in from a real endpoint.
STANDIN_HEADER = "X-Lakehouse-Glue-Standin"
# GetStatement waits this long for a running statement to end before answering (long poll).
# dbt-glue sleeps a second between polls: with a short wait, every statement longer than the wait
# cost up to a second more (474 statements in a rehearsal of the 2,000-row fixture). Well under
# botocore's 60 s read timeout.
STATEMENT_LONG_POLL_SECONDS = 15.0


class StandIn:
    """The Glue stand-in's state: sessions, the metastore, what Lake Formation was asked."""

    def __init__(
        self,
        metastore: Metastore | None = None,
        spark_factory: Any = None,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self.metastore: Metastore = metastore or MemoryMetastore()
        self.spark_factory = spark_factory
        self.statement_timeout = statement_timeout
        self.sessions: dict[str, GlueSession] = {}
        self.lake_formation_grants: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- Glue operations -------------------------------------------------------------------
    def glue(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_glue_{operation}", None)
        if handler is None:
            raise GlueError("InvalidAction", f"The stand-in does not implement Glue {operation}")
        result: dict[str, Any] = handler(body)
        return result

    def _session(self, session_id: str) -> GlueSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise GlueError("EntityNotFoundException", f"Session {session_id} not found")
        return session

    def _glue_CreateSession(self, body: dict[str, Any]) -> dict[str, Any]:
        session_id = body.get("Id")
        if not session_id or not body.get("Role") or not body.get("Command"):
            raise GlueError("ValidationException", "Id, Role and Command are required")
        with self._lock:
            if session_id in self.sessions:
                raise GlueError("AlreadyExistsException", f"Session {session_id} already exists")
            session = GlueSession(session_id, body, self.spark_factory, self.statement_timeout)
            self.sessions[session_id] = session
        answer = session.as_api()
        answer["Status"] = "PROVISIONING"  # what Glue answers to CreateSession
        return {"Session": answer}

    def _glue_GetSession(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Session": self._session(body["Id"]).as_api()}

    def _glue_ListSessions(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "Ids": list(self.sessions),
            "Sessions": [s.as_api() for s in self.sessions.values()],
        }

    def _glue_StopSession(self, body: dict[str, Any]) -> dict[str, Any]:
        self._session(body["Id"]).stop()
        return {"Id": body["Id"]}

    def _glue_DeleteSession(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body["Id"])
        session.stop()
        with self._lock:
            self.sessions.pop(body["Id"], None)
        return {"Id": body["Id"]}

    def _glue_RunStatement(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body["SessionId"])
        return {"Id": session.run(body.get("Code", ""))}

    def _glue_GetStatement(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body["SessionId"])
        statement = session.get(int(body["Id"]), wait_seconds=STATEMENT_LONG_POLL_SECONDS)
        return {"Statement": statement.as_api()}

    def _glue_ListStatements(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body["SessionId"])
        return {"Statements": [s.as_api() for s in session.statements]}

    def _glue_CancelStatement(self, body: dict[str, Any]) -> dict[str, Any]:
        self._session(body["SessionId"]).cancel(int(body["Id"]))
        return {}

    def _glue_GetDatabases(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"DatabaseList": self.metastore.databases()}

    def _glue_GetDatabase(self, body: dict[str, Any]) -> dict[str, Any]:
        for database in self.metastore.databases():
            if database["Name"] == body["Name"]:
                return {"Database": database}
        raise GlueError("EntityNotFoundException", f"Database {body['Name']} not found.")

    def _glue_CreateDatabase(self, body: dict[str, Any]) -> dict[str, Any]:
        database = body["DatabaseInput"]
        self.metastore.create_database(
            database["Name"], database.get("LocationUri"), database.get("Description", "")
        )
        return {}

    def _glue_DeleteDatabase(self, body: dict[str, Any]) -> dict[str, Any]:
        self.metastore.delete_database(body["Name"])
        return {}

    def _glue_GetTables(self, body: dict[str, Any]) -> dict[str, Any]:
        tables = self.metastore.tables(body["DatabaseName"])
        expression = body.get("Expression")
        if expression:
            import re

            pattern = re.compile(expression.replace("*", ".*"), re.IGNORECASE)
            tables = [t for t in tables if pattern.fullmatch(t["Name"])]
        return {"TableList": tables}

    def _glue_GetTable(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Table": self.metastore.table(body["DatabaseName"], body["Name"])}

    def _glue_DeleteTable(self, body: dict[str, Any]) -> dict[str, Any]:
        self.metastore.delete_table(body["DatabaseName"], body["Name"])
        return {}

    # -- STS and Lake Formation ------------------------------------------------------------
    def sts(self, action: str) -> str:
        if action != "GetCallerIdentity":
            raise GlueError("InvalidAction", f"The stand-in does not implement STS {action}")
        return (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>arn:aws:iam::{CATALOG_ID}:user/glue-standin</Arn>"
            "<UserId>GLUESTANDIN</UserId>"
            f"<Account>{CATALOG_ID}</Account>"
            "</GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>glue-standin</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )

    def lake_formation(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation in ("BatchGrantPermissions", "BatchRevokePermissions"):
            self.lake_formation_grants.append({"operation": operation, **body})
            return {"Failures": []}
        if operation == "ListPermissions":
            return {"PrincipalResourcePermissions": []}
        if operation == "GetResourceLFTags":
            return {}
        raise GlueError(
            "InvalidInputException", f"The stand-in does not implement Lake Formation {operation}"
        )

    # -- serving ---------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback in background threads; return the endpoint URL."""
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    raise TypeError(f"not JSON serialisable: {value!r}")


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: with Nagle's algorithm on, the body waits
    # for the ACK of the headers, which the client delays by 40 ms. Every Glue call took 44 ms
    # that way (a statement two calls, a dbt-glue build about 1,400).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, error_code: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(STANDIN_HEADER, "1")
        self.send_header("x-amzn-RequestId", "glue-standin")
        if error_code:
            self.send_header("x-amzn-ErrorType", error_code)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # a health check for the launcher
        self._send(200, b'{"standin": "glue"}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        content_type = self.headers.get("Content-Type", "")
        try:
            if target.startswith("AWSGlue."):
                answer = self.standin.glue(target.split(".", 1)[1], json.loads(raw or b"{}"))
                self._send(
                    200,
                    json.dumps(answer, default=_json_default).encode(),
                    "application/x-amz-json-1.1",
                )
            elif "x-www-form-urlencoded" in content_type:
                form = urllib.parse.parse_qs(raw.decode())
                xml = self.standin.sts(form.get("Action", [""])[0])
                self._send(200, xml.encode(), "text/xml")
            else:
                operation = self.path.strip("/").split("?")[0]
                answer = self.standin.lake_formation(operation, json.loads(raw or b"{}"))
                self._send(200, json.dumps(answer).encode(), "application/json")
        except GlueError as error:
            self._error(error.status, error.code, error.message, content_type)
        except Exception as error:
            log.exception("stand-in failed on %s", target or self.path)
            self._error(500, "InternalServiceException", f"{type(error).__name__}: {error}", "")

    def _error(self, status: int, code: str, message: str, content_type: str) -> None:
        if "x-www-form-urlencoded" in content_type:
            xml = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></ErrorResponse>"
            )
            self._send(status, xml.encode(), "text/xml", code)
            return
        body = json.dumps({"__type": code, "Message": message}).encode()
        self._send(status, body, "application/x-amz-json-1.1", code)


def serve(folder: Path, port: int = 0, statement_timeout: float | None = None) -> StandIn:
    """Start the stand-in with a real local Spark rooted at `folder` (see spark.py)."""
    import os

    from lakehouse.glue_standin.catalog import SparkMetastore
    from lakehouse.glue_standin.spark import build_spark, session_factory

    spark = build_spark(
        folder,
        cores=os.environ.get("LAKEHOUSE_SPARK_CORES", "2"),
        memory=os.environ.get("LAKEHOUSE_SPARK_MEMORY", "2g"),
    )
    standin = StandIn(
        metastore=SparkMetastore(spark),
        spark_factory=session_factory(spark),
        statement_timeout=statement_timeout or DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    )
    standin.start(port=port)
    return standin
