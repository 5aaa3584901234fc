"""The `zoo` CLI: output shapes, exit codes, help texts, layouts by terminal width, cold imports.

Most tests run the app in-process with Typer's CliRunner (``invoke_zoo``); the ones about
a fresh interpreter (imports, the console-script exit path) use ``run_zoo``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, copy_zoo, invoke_zoo, run_zoo
from typer.main import get_command

from zootool.cli.app import app
from zootool.cli.list_rows import ListRow
from zootool.cli.list_view import cells
from zootool.config.registry import resolve_all
from zootool.config.zoo_data import Zoo


def test_version():
    result = invoke_zoo("--version")
    assert result.exit_code == 0 and result.stdout.startswith("zootool ")


def test_plan_json_has_params_and_estimate():
    result = invoke_zoo("plan", "lfm2.5-8b-a1b", "--target", "mac", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["estimate"]["params"] > 8_000_000_000
    assert plan["budget"]["estimated_bytes"] == plan["estimate"]["weight_bytes"] + plan["estimate"]["program_bytes"]
    assert plan["scheme_id"] == "sym8" and plan["kernel_id"] == "gather_qmm"
    assert len(plan["plan_hash"]) == 16


def test_plan_over_budget_exit_3_with_alternative():
    result = invoke_zoo("plan", "lfm2.5-8b-a1b", "--target", "iphone", "--quant", "sym8")
    assert result.exit_code == 3
    assert "exceeds the iphone budget" in result.stderr and "--quant int4km" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_and_target_exit_2():
    model = invoke_zoo("plan", "lfm2.5-8b-a1c", "--target", "mac")
    assert model.exit_code == 2 and "did you mean 'lfm2.5-8b-a1b'?" in model.stderr
    target = invoke_zoo("plan", "lfm2.5-8b-a1b", "--target", "iphon")
    assert target.exit_code == 2 and "did you mean 'iphone'?" in target.stderr


def test_root_that_is_not_a_zoo_exit_2(tmp_path):
    for result in (invoke_zoo("list", root=tmp_path), invoke_zoo("list", root=None, env={"ZOO_ROOT": str(tmp_path)})):
        assert result.exit_code == 2, result.stdout
        assert "not a zoo checkout" in result.stderr and str(tmp_path) in result.stderr


def test_list_json_rows_cover_every_target():
    rows = json.loads(invoke_zoo("list", "--json").stdout)
    pairs = {(r["model"], r["target"]) for r in rows}
    assert {("lfm2.5-8b-a1b", "mac"), ("lfm2.5-8b-a1b", "iphone"), ("tiny-lfm2-moe", "mac")} <= pairs
    assert all(isinstance(r["fits"], bool) for r in rows)


def test_show_json():
    data = json.loads(invoke_zoo("show", "tiny-lfm2-moe", "--json").stdout)
    assert data["recipe"]["model"]["id"] == "tiny-lfm2-moe"
    assert {p["target"] for p in data["plans"]} == {"mac", "iphone"}


def test_schema_is_json_schema_with_kebab_keys():
    schema = json.loads(invoke_zoo("schema").stdout)
    assert schema["type"] == "object" and "targets" in schema["properties"]
    arch = json.dumps(schema)
    assert "hidden-size" in arch and "max-introduced-flips" in arch


def repo_plans():
    plans, errors = resolve_all(Zoo(REPO), str)
    assert plans and not errors
    return plans


@pytest.mark.parametrize("columns", [40, 80, 100, 160])
def test_list_never_cuts_an_id_or_a_number(columns):
    result = invoke_zoo("list", env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in result.stdout
    rows = json.loads(invoke_zoo("list", "--json").stdout)
    for plan in repo_plans():
        shown = cells(ListRow.from_plan(plan))
        whole = [plan.recipe_id, plan.target, plan.platform_id, plan.scheme_id, plan.kernel_id,
                 shown["params"], shown["estimate"], shown["budget"]]
        missing = [word for word in whole if not any(re.search(rf"(^|\s){re.escape(word)}(,|:|\s|$)", line)
                                                      for line in lines)]
        assert not missing, f"{plan.recipe_id}/{plan.target} at {columns} columns: {missing}"
    assert {r["model"] for r in rows} == {p.recipe_id for p in repo_plans()}


def test_list_at_80_columns_keeps_one_target_per_line():
    lines = invoke_zoo("list", env={"COLUMNS": "80"}).stdout.splitlines()
    for plan in repo_plans():
        shown = cells(ListRow.from_plan(plan))
        row = [plan.target, plan.platform_id, plan.scheme_id, plan.kernel_id, shown["estimate"], shown["budget"]]
        assert any(all(word in line for word in row) for line in lines), row


def every_command():
    root = get_command(app)
    return [((), root)] + [((name,), command) for name, command in root.commands.items()]


def help_texts(command) -> list[str]:
    texts = [command.help or "", command.epilog or ""]
    return texts + [getattr(param, "help", None) or "" for param in command.params]


def test_every_help_text_keeps_its_bracketed_words():
    """Help is rendered as Rich markup, which silently drops an unescaped "[word]"."""
    checked = 0
    for path, command in every_command():
        result = invoke_zoo(*path, "--help", root=None, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.stderr
        rendered = " ".join(result.stdout.replace("│", " ").split())
        for text in help_texts(command):
            visible = text.replace("\\[", "[")
            for bracketed in re.findall(r"\[[^\]]*\]", visible):
                assert " ".join(bracketed.split()) in rendered, f"zoo {' '.join(path)} --help lost {bracketed}"
                checked += 1
    assert checked, "no help text has a bracketed word: this test checks nothing"


def test_console_script_exit_path_for_a_bad_recipe():
    """The real interpreter exit: code 2, one line, no traceback."""
    result = run_zoo("plan", "tiny-llama", "--target", "macc")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("error: recipes/tiny-llama.toml: ")
    assert "Traceback" not in result.stderr


def test_list_does_not_import_heavy_stacks():
    """Start-up: no conversion stack, and `--json` needs no Rich rendering either."""
    code = (
        "import sys; from zootool.cli.app import main; sys.argv=['zoo','list','--json'];\n"
        "try: main()\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('torch','coreai','huggingface_hub','transformers','rich.console','rich.table')"
        " if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "HEAVY=" in result.stderr
    assert result.stderr.strip().endswith("HEAVY="), result.stderr


def test_a_reader_that_quits_early_ends_the_command_quietly():
    """`zoo build --help | head -30`: the closed pipe is no error to report (exit 1, as Typer does)."""
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the help: the command blocks writing
    process = subprocess.Popen([sys.executable, "-m", "zootool", "build", "--help"], cwd=REPO, stdout=write_end,
                               stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "80"})
    os.close(write_end)
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        taken = b""
        while len(taken) < 2000:  # about 30 lines, then the reader quits while the command still writes
            taken += reader.read(2000 - len(taken)) or b"!"
    assert not taken.endswith(b"!"), "the help ended before 2000 bytes"
    stderr = process.stderr.read().decode()
    assert process.wait() == 1
    assert stderr == ""


def test_given_values_are_still_coerced_by_typer():
    """Typer's coercion is built on a parameter's first value (zootool/lazy_coercion.py), so a
    bad value still gets Typer's own usage error, exit 2, and a good one its type."""
    bad_int = invoke_zoo("run", "build/x/mac", "--prompt", "hi", "--max-tokens", "0")
    assert bad_int.exit_code == 2 and "greater than or equal to 1" in bad_int.stderr
    not_an_int = invoke_zoo("build", "--all", "--jobs", "many", "--dry-run")
    assert not_an_int.exit_code == 2 and "--jobs" in not_an_int.stderr
    as_path = invoke_zoo("verify", "no-such-bundle")
    assert as_path.exit_code != 0 and "no-such-bundle: not a directory" in as_path.stderr


def test_a_failing_json_command_prints_its_error_as_json(tmp_path):
    """--json: stdout holds one JSON document, the error when the command fails (stderr still says it)."""
    refused = invoke_zoo("plan", "qwen3-0.6b", "--target", "mac", "--quant", "pal4", "--json")
    assert refused.exit_code == 2
    error = json.loads(refused.stdout)["error"]
    assert error["exit_code"] == 2 and "scheme 'pal4' has no mapping on backend 'coreai'" in error["message"]
    assert error["hint"].startswith("schemes for backend coreai") and error["message"] in refused.stderr
    # zoo build fails in its fetch stage: the pinned Hub weights are not here and the Hub may not be asked.
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    failed = run_zoo("build", "qwen3-0.6b", "--target", "mac", "--json", root=copy_zoo(tmp_path / "zoo"), env=env)
    assert failed.returncode == 9 and json.loads(failed.stdout)["error"]["exit_code"] == 9, failed.stdout
    # A command that printed its own document before failing keeps it as the only one.
    verified = invoke_zoo("verify", str(tmp_path), "--json")
    assert verified.exit_code == 8 and json.loads(verified.stdout)["ok"] is False
    plain = invoke_zoo("plan", "qwen3-0.6b", "--target", "mac", "--quant", "pal4")
    assert plain.exit_code == 2 and plain.stdout == ""
