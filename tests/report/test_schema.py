import json
from pathlib import Path

from servopt.report.schema import json_schema

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "result_schema.json"


def test_documented_schema_is_current():
    assert json.loads(SCHEMA_DOC.read_text()) == json_schema(), "regenerate: python -m servopt.report.schema"
