"""The `zoo` CLI end to end in fresh interpreters: output shapes, exit codes, cold imports."""

from __future__ import annotations

import json

from conftest import REPO, run_zoo


def test_version():
    result = run_zoo("--version")
    assert result.returncode == 0 and result.stdout.startswith("zootool ")


def test_plan_json_has_params_and_estimate():
    result = run_zoo("plan", "lfm2.5-8b-a1b", "--target", "mac", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["estimate"]["params"] > 8_000_000_000
    assert plan["budget"]["estimated_bytes"] == plan["estimate"]["weight_bytes"]
    assert plan["scheme_id"] == "sym8" and plan["kernel_id"] == "gather_qmm"
    assert len(plan["plan_hash"]) == 16


def test_plan_over_budget_exit_3_with_alternative():
    result = run_zoo("plan", "lfm2.5-8b-a1b", "--target", "iphone", "--quant", "sym8")
    assert result.returncode == 3
    assert "exceeds the iphone budget" in result.stderr and "--quant int4km" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_and_target_exit_2():
    model = run_zoo("plan", "lfm2.5-8b-a1c", "--target", "mac")
    assert model.returncode == 2 and "did you mean 'lfm2.5-8b-a1b'?" in model.stderr
    target = run_zoo("plan", "lfm2.5-8b-a1b", "--target", "iphon")
    assert target.returncode == 2 and "did you mean 'iphone'?" in target.stderr


def test_root_that_is_not_a_zoo_exit_2(tmp_path):
    for result in (run_zoo("list", root=tmp_path), run_zoo("list", env={"ZOO_ROOT": str(tmp_path)})):
        assert result.returncode == 2, result.stdout
        assert "not a zoo checkout" in result.stderr and str(tmp_path) in result.stderr


def test_list_json_rows_cover_every_target():
    result = run_zoo("list", "--json")
    rows = json.loads(result.stdout)
    pairs = {(r["model"], r["target"]) for r in rows}
    assert {("lfm2.5-8b-a1b", "mac"), ("lfm2.5-8b-a1b", "iphone"), ("tiny-lfm2-moe", "mac")} <= pairs
    assert all(isinstance(r["fits"], bool) for r in rows)


def test_show_json():
    result = run_zoo("show", "tiny-lfm2-moe", "--json")
    data = json.loads(result.stdout)
    assert data["recipe"]["model"]["id"] == "tiny-lfm2-moe"
    assert {p["target"] for p in data["plans"]} == {"mac", "iphone"}


def test_schema_is_json_schema_with_kebab_keys():
    schema = json.loads(run_zoo("schema").stdout)
    assert schema["type"] == "object" and "targets" in schema["properties"]
    arch = json.dumps(schema)
    assert "hidden-size" in arch and "max-introduced-flips" in arch


def test_list_does_not_import_heavy_stacks():
    code = (
        "import sys; from zootool.cli import main; sys.argv=['zoo','list','--json'];\n"
        "try: main()\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('torch','coreai','huggingface_hub','transformers') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "HEAVY=" in result.stderr
    assert result.stderr.strip().endswith("HEAVY="), result.stderr
