"""perf_db.tables: Arrow columns to numpy without pyarrow's pandas-importing conversions."""

import subprocess
import sys

import numpy as np
import pyarrow as pa

from servopt.perf_db.tables import _numbers, _strings


def test_numbers_keep_values_and_map_nulls():
    ints = pa.chunked_array([pa.array([1, None, 3], type=pa.int32()), pa.array([4], type=pa.int32())])
    assert _numbers(ints, np.int64, 0).tolist() == [1, 0, 3, 4]
    floats = pa.chunked_array([pa.array([1.5, None, 3.0]).slice(1, 2)])  # an offset slice
    out = _numbers(floats, np.float64, np.nan)
    assert np.isnan(out[0]) and out[1] == 3.0 and out.dtype == np.float64
    assert _numbers(pa.chunked_array([pa.array([], type=pa.float64())]), np.float64, np.nan).size == 0


def test_strings_map_nulls_to_empty_across_chunks_and_offsets():
    col = pa.chunked_array([pa.array(["a", None, "b", "a"]), pa.array([None, "c"])])
    assert _strings(col).tolist() == ["a", "", "b", "a", "", "c"]
    sliced = pa.array([None if i % 7 == 0 else f"s{i % 5}" for i in range(1000)]).slice(3, 900)
    expected = [x if x is not None else "" for x in sliced.to_pylist()]
    assert _strings(pa.chunked_array([sliced])).tolist() == expected
    assert _strings(pa.chunked_array([pa.array([None, None], type=pa.string())])).tolist() == ["", ""]


def test_a_database_build_does_not_import_pandas(tmp_path):
    code = (
        "import sys\n"
        "from servopt.perf_db.database import open_database\n"
        f"db = open_database('h200_sxm', 'trtllm', cache_dir={str(tmp_path)!r})\n"
        "assert not db.from_cache\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
