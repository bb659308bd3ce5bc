"""Two ``omr scan`` on one store, and a link planted where the export used to write."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time

from tests.hostile.conftest import OMR, scan
from tests.omr.batch_helpers import write_cards


def test_two_scans_on_one_store_each_complete_or_refused_and_each_page_once(tmp_path, key_path, layout):
    write_cards(tmp_path / "a", 12, layout, seed=21)
    write_cards(tmp_path / "b", 12, layout, seed=22)
    for i in range(4):  # the same content under both folders
        (tmp_path / "b" / f"same-{i}.jpg").write_bytes((tmp_path / "a" / f"card-{i:03d}.jpg").read_bytes())
    inputs = {"a": ["a"], "b": ["a", "b"]}  # the second also holds the first's pages
    procs = {}
    for name in ("a", "b"):
        procs[name] = subprocess.Popen(
            [*OMR, "scan", *inputs[name], "--key", str(key_path), "--db", "r.sqlite", "--out", f"{name}.csv",
             "--workers", "1"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
    done = {name: (p.wait(timeout=60), *p.communicate()) for name, p in procs.items()}
    expected = {"a": 12, "b": 28}
    refused = []
    for name, (code, out, err) in done.items():
        assert "Traceback" not in err, err
        if "another omr scan is writing this store" in err:  # refused, clearly, having written nothing
            assert code == 3, (code, err)  # an environment fault: run it again once the other is done
            assert not (tmp_path / f"{name}.csv").exists() and not out
            refused.append(name)
        else:
            assert code == 0 and f"scanned {expected[name]} pages" in out, (code, out, err)
            with open(tmp_path / f"{name}.csv") as fh:
                assert len(fh.readlines()) == 1 + expected[name]  # its export complete
    assert len(refused) <= 1
    for name in refused:  # run again once the store is free: completes
        again = scan(tmp_path, key_path, *inputs[name], out=f"{name}.csv")
        again.assert_clean()
        assert len(again.rows) == expected[name]
    con = sqlite3.connect(tmp_path / "r.sqlite")
    total, distinct = con.execute("SELECT count(*), count(DISTINCT source || '#' || page) FROM pages").fetchone()
    readings = con.execute("SELECT count(*), count(DISTINCT content_hash) FROM pages "
                           "WHERE duplicate_of IS NULL").fetchone()
    con.close()
    assert total == distinct == 28 and readings == (24, 24)


def test_an_export_never_writes_through_a_planted_link(tmp_path, key_path, layout):
    write_cards(tmp_path / "in", 1, layout, seed=23)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / ".r.csv.partial")
    run = scan(tmp_path, key_path, "in")
    run.assert_clean()
    assert run.returncode == 0 and len(run.rows) == 1 and victim.read_text() == "keep me"
