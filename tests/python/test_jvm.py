"""Class-data sharing for the Spark JVM (lakehouse/jvm.py): archives are tied to the exact jars,
a stale or missing archive means no CDS option (never a broken start), and the archive `make
setup` built is one the JVM really maps; a lake session leaves nothing behind in the JVM's temp
dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse import jvm


@pytest.fixture
def fake_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"core")
    monkeypatch.setattr(jvm, "spark_jars", lambda: jars)
    monkeypatch.setattr(jvm, "cds_dir", lambda: tmp_path / "cds")
    base = tmp_path / "classes.jsa"
    base.write_bytes(b"base")
    monkeypatch.setattr(jvm, "_base_archive", lambda: base)
    return jars


def test_the_archive_name_changes_with_any_jar(fake_install: Path) -> None:
    before = jvm.archive_key()
    (fake_install / "iceberg.jar").write_bytes(b"new jar")
    added = jvm.archive_key()
    (fake_install / "iceberg.jar").write_bytes(b"another build of it")
    changed = jvm.archive_key()
    assert len({before, added, changed}) == 3


def test_no_archive_for_these_jars_means_no_cds_option(fake_install: Path) -> None:
    assert jvm.driver_java_options() == ""
    assert "SharedArchiveFile" not in jvm.launcher_java_options()


def test_an_archive_for_these_jars_is_used_quietly(fake_install: Path) -> None:
    archive = jvm.spark_archive()
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"archive")
    options = jvm.driver_java_options()
    assert f"-XX:SharedArchiveFile={archive}" in options
    # a mismatch found by the JVM itself falls back without a word in the build's output
    assert "-Xshare:auto" in options and "-Xlog:cds=off" in options
    (fake_install / "spark-core.jar").write_bytes(b"upgraded")  # the jars moved on
    assert jvm.driver_java_options() == ""


def test_the_archive_make_setup_built_is_mapped_by_the_jvm() -> None:
    archive = jvm.spark_archive()
    assert archive.is_file(), "make setup runs `lakehouse setup-jvm`, which builds it"
    java = jvm.java_home() / "bin" / "java"
    classpath = f"{jvm.spark_jars()}/*"
    # -Xshare:on fails instead of falling back: the archive matches this JDK and class path
    result = subprocess.run(
        [str(java), f"-XX:SharedArchiveFile={archive}", "-Xshare:on", "-cp", classpath, "-version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sharing" in result.stderr


def test_a_lake_session_leaves_nothing_in_the_jvms_temp_dir(tmp_path: Path) -> None:
    """Hive's client made a `<session id>_resources` folder in java.io.tmpdir for every Spark
    session and never removed it: one more folder in /tmp per lake command. The session runs as
    the lake target configures it (bench/spark_startup.py), with its own temp dir to look in."""
    java_tmp = tmp_path / "java_tmp"
    java_tmp.mkdir()
    home = tmp_path / "lake"
    env = {**os.environ, "LAKEHOUSE_SPARK_JAVA_OPTIONS": f"-Djava.io.tmpdir={java_tmp}"}

    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.spark_startup",
            "--home",
            str(home),
            "--out",
            str(tmp_path / "s.json"),
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert json.loads((tmp_path / "s.json").read_text())["metastore_s"] > 0  # the catalog answered
    assert sorted(entry.name for entry in java_tmp.iterdir()) == []
    assert (home / "_hive_resources").is_dir()


def _land(home: Path, *rows: int) -> None:
    """Ledger entries as the landing writes them (only the id and `rows` matter here)."""
    from lakehouse.settings import Paths

    ledger = Paths(home).ledger
    ledger.mkdir(parents=True)
    for number, count in enumerate(rows):
        (ledger / f"batch{number}.json").write_text(
            json.dumps({"batch_id": f"batch{number}", "rows": count})
        )


def test_a_small_lake_gets_c1_only_with_the_full_code_cache(tmp_path: Path) -> None:
    from lakehouse.engines import engine_environment
    from lakehouse.settings import Paths

    empty = engine_environment(Paths(tmp_path / "empty"))["LAKEHOUSE_SPARK_JIT_OPTIONS"]
    _land(tmp_path / "small", 29_116, 2_000)
    small = engine_environment(Paths(tmp_path / "small"))["LAKEHOUSE_SPARK_JIT_OPTIONS"]
    for options in (empty, small):
        assert "-XX:TieredStopAtLevel=1" in options
        # C1 only would shrink the code cache to 48 MB, which a 550k-row run filled
        assert "-XX:ReservedCodeCacheSize=240m" in options


def test_a_large_lake_keeps_the_tiered_jit(tmp_path: Path) -> None:
    from lakehouse.engines import engine_environment
    from lakehouse.settings import Paths

    _land(tmp_path / "large", jvm.C1_ONLY_MAX_ROWS, 1)
    assert engine_environment(Paths(tmp_path / "large"))["LAKEHOUSE_SPARK_JIT_OPTIONS"] == ""


def test_new_batches_on_a_built_lake_get_c1_only_unless_everything_is_rebuilt(
    tmp_path: Path,
) -> None:
    """The JIT follows what the first build reads: on a large lake whose batches the last lake
    build recorded, a small new batch (a watch cycle) gets C1; a large new batch, or a full
    refresh that reads every batch again, keeps the tiered JIT."""
    from lakehouse import build_state
    from lakehouse.engines import engine_environment
    from lakehouse.settings import Paths

    lake = Paths(tmp_path / "lake")
    _land(lake.home, 5_500_680, 55_007)
    history = build_state.Fingerprints(code="c", inputs="i")
    state = build_state.state_file(lake, build_state.LAKE)

    def jit(reads_all_batches: bool = False) -> str:
        return engine_environment(lake, reads_all_batches)["LAKEHOUSE_SPARK_JIT_OPTIONS"]

    assert build_state.rows_to_build(lake) == 5_555_687 and jit() == ""
    build_state.record(state, history, ["batch0"])
    assert build_state.rows_to_build(lake) == 55_007
    assert "-XX:TieredStopAtLevel=1" in jit()
    assert jit(reads_all_batches=True) == ""
    build_state.record(state, history, ["batch1"])
    assert build_state.rows_to_build(lake) == 5_500_680 and jit() == ""
    build_state.record(state, history, build_state.ledger_batches(lake))
    assert build_state.rows_to_build(lake) == 0


def test_the_users_java_options_come_after_the_chosen_ones() -> None:
    """A flag in LAKEHOUSE_SPARK_JAVA_OPTIONS overrides the JIT choice: the JVM takes the last."""
    import yaml

    from lakehouse.settings import profiles_dir

    profiles = yaml.safe_load((profiles_dir() / "profiles.yml").read_text())
    options = profiles["lakehouse"]["outputs"]["lake"]["server_side_parameters"][
        "spark.driver.extraJavaOptions"
    ]
    assert options.index("LAKEHOUSE_SPARK_JIT_OPTIONS") < options.index(
        "LAKEHOUSE_SPARK_JAVA_OPTIONS"
    )


def test_lakehouse_spark_jit_overrides_the_choice_by_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.engines import engine_environment
    from lakehouse.settings import Paths

    _land(tmp_path / "small", 2_000)
    _land(tmp_path / "large", jvm.C1_ONLY_MAX_ROWS + 1)

    def jit(home: str) -> str:
        return engine_environment(Paths(tmp_path / home))["LAKEHOUSE_SPARK_JIT_OPTIONS"]

    monkeypatch.setenv("LAKEHOUSE_SPARK_JIT", "tiered")
    assert jit("small") == ""
    monkeypatch.setenv("LAKEHOUSE_SPARK_JIT", "c1")
    assert "-XX:TieredStopAtLevel=1" in jit("large")
    monkeypatch.setenv("LAKEHOUSE_SPARK_JIT", "auto")
    assert jit("large") == "" and "-XX:TieredStopAtLevel=1" in jit("small")
    monkeypatch.setenv("LAKEHOUSE_SPARK_JIT", "C2")
    with pytest.raises(ValueError, match="LAKEHOUSE_SPARK_JIT='c2': use one of auto, tiered, c1"):
        jit("small")
