"""The Glue stand-in's protocol, through boto3 as dbt-glue calls it: session lifecycle,
statements (output, errors the way Glue returns them, the 68,000-character limit, the timeout),
the Data Catalog answers, STS and Lake Formation. No Spark here: statements run plain Python and
the catalog is the in-memory one; the Spark-backed stand-in is exercised by the rehearsal test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lakehouse.glue_standin.catalog import MemoryMetastore
from lakehouse.glue_standin.server import StandIn
from lakehouse.glue_standin.sessions import MAX_CODE_CHARS, parse_conf
from lakehouse.glue_standin.spark import local_conf
from lakehouse.rehearse import RehearsalRefused, require_standin

ROLE = "arn:aws:iam::000000000000:role/test"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn(metastore=MemoryMetastore(), statement_timeout=2.0)
    server.start()
    yield server
    server.shutdown()


def client(standin: StandIn, service: str = "glue") -> Any:
    return boto3.client(
        service,
        endpoint_url=standin.url,
        region_name="us-east-1",
        aws_access_key_id="test-fake-key",
        aws_secret_access_key="test-fake-secret",  # pragma: allowlist secret
    )


def create_session(glue: Any, session_id: str = "s1") -> None:
    glue.create_session(
        Id=session_id,
        Role=ROLE,
        Command={"Name": "glueetl", "PythonVersion": "3"},
        DefaultArguments={"--conf": "spark.sql.session.timeZone=UTC"},
    )


def run(glue: Any, code: str, session_id: str = "s1") -> dict[str, Any]:
    statement_id = glue.run_statement(SessionId=session_id, Code=code)["Id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statement: dict[str, Any] = glue.get_statement(SessionId=session_id, Id=statement_id)[
            "Statement"
        ]
        if statement["State"] in ("AVAILABLE", "ERROR", "CANCELLED"):
            return statement
    raise AssertionError("statement never ended")


def test_session_lifecycle(standin: StandIn) -> None:
    glue = client(standin)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_session(Id="s1")
    create_session(glue)
    assert glue.get_session(Id="s1")["Session"]["Status"] == "READY"
    with pytest.raises(glue.exceptions.AlreadyExistsException):
        create_session(glue)
    glue.stop_session(Id="s1")
    assert glue.get_session(Id="s1")["Session"]["Status"] == "STOPPED"
    with pytest.raises(glue.exceptions.IllegalSessionStateException):
        glue.run_statement(SessionId="s1", Code="1")
    glue.delete_session(Id="s1")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_session(Id="s1")


def test_statement_output_is_what_the_code_printed(standin: StandIn) -> None:
    glue = client(standin)
    create_session(glue)
    # the namespace lives as long as the session, like a REPL (dbt-glue defines SqlWrapper2 once)
    run(glue, "rows = [{'a': 1}]")
    statement = run(glue, "import json\nprint(json.dumps({'results': rows}))")
    assert statement["State"] == "AVAILABLE"
    assert statement["Output"]["Status"] == "ok"
    first_line = statement["Output"]["Data"]["TextPlain"].splitlines()[0]
    assert json.loads(first_line) == {"results": [{"a": 1}]}


def test_statement_error_comes_back_as_glue_returns_it(standin: StandIn) -> None:
    glue = client(standin)
    create_session(glue)
    statement = run(glue, "raise ValueError('no such table')")
    assert statement["State"] == "AVAILABLE"
    output = statement["Output"]
    assert output["Status"] == "error"
    assert output["ErrorName"] == "ValueError"
    assert output["ErrorValue"] == "no such table"
    assert output["Traceback"]


def test_code_longer_than_glue_allows_is_refused_before_running(standin: StandIn) -> None:
    glue = client(standin)
    create_session(glue)
    run(glue, "x = " + "1" * (MAX_CODE_CHARS - 4))  # exactly at the limit: accepted
    with pytest.raises(glue.exceptions.ValidationException, match="68000"):
        glue.run_statement(SessionId="s1", Code="x = " + "1" * MAX_CODE_CHARS)
    assert len(glue.list_statements(SessionId="s1")["Statements"]) == 1


def test_a_statement_that_never_ends_is_ended_at_its_deadline(standin: StandIn) -> None:
    glue = client(standin)
    create_session(glue)
    started = time.monotonic()
    statement = run(glue, "import time\ntime.sleep(30)")
    assert time.monotonic() - started < 10
    assert statement["State"] == "ERROR"
    assert statement["Output"]["ErrorName"] == "TimeoutError"


def test_catalog_answers_what_dbt_glue_reads(standin: StandIn) -> None:
    glue = client(standin)
    metastore = standin.metastore
    assert isinstance(metastore, MemoryMetastore)
    glue.create_database(DatabaseInput={"Name": "gold", "LocationUri": "file:///lake/gold/"})
    with pytest.raises(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": "gold"})
    metastore.put_table("gold", "fct_sales", {"table_type": "ICEBERG"})
    names = [
        d["Name"]
        for d in glue.get_paginator("get_databases").paginate().build_full_result()["DatabaseList"]
    ]
    assert names == ["gold"]
    assert [t["Name"] for t in glue.get_tables(DatabaseName="gold")["TableList"]] == ["fct_sales"]
    table = glue.get_table(DatabaseName="gold", Name="fct_sales")["Table"]
    assert table["Parameters"]["table_type"] == "ICEBERG"
    assert table["TableType"] == "EXTERNAL_TABLE"
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName="gold", Name="missing")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_tables(DatabaseName="missing")
    glue.delete_table(DatabaseName="gold", Name="fct_sales")
    assert glue.get_tables(DatabaseName="gold")["TableList"] == []


def test_sts_and_lake_formation_answer_create_schema(standin: StandIn) -> None:
    assert client(standin, "sts").get_caller_identity()["Account"] == "000000000000"
    answer = client(standin, "lakeformation").batch_grant_permissions(
        CatalogId="000000000000", Entries=[]
    )
    assert answer["Failures"] == []
    assert standin.lake_formation_grants[0]["operation"] == "BatchGrantPermissions"


def test_session_conf_keeps_what_would_reach_aws_local() -> None:
    conf = parse_conf(
        "spark.sql.catalog.glue_catalog=org.apache.iceberg.spark.SparkCatalog"
        " --conf spark.sql.catalog.glue_catalog.catalog-impl=org.apache.iceberg.aws.glue."
        "GlueCatalog"
        " --conf spark.sql.catalog.glue_catalog.warehouse=s3://bucket/lake"
        " --conf spark.sql.catalog.glue_catalog.cache-enabled=false"
        " --conf spark.sql.sources.partitionOverwriteMode=dynamic"
    )
    applied, replaced = local_conf(conf)
    assert applied == {
        "spark.sql.catalog.glue_catalog.cache-enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }
    assert set(replaced) == {
        "spark.sql.catalog.glue_catalog",
        "spark.sql.catalog.glue_catalog.catalog-impl",
        "spark.sql.catalog.glue_catalog.warehouse",
    }


def test_rehearsal_refuses_an_endpoint_that_is_not_the_standin(standin: StandIn) -> None:
    require_standin(standin.url)
    with pytest.raises(RehearsalRefused, match="loopback"):
        require_standin("https://glue.us-east-1.amazonaws.com")
    with pytest.raises(RehearsalRefused, match="no Glue stand-in"):
        require_standin("http://127.0.0.1:9")
