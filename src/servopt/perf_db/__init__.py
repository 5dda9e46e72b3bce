"""The performance database: system specs, measured grids (from aiconfigurator-core's parquet
tables, converted to servopt's own array format and cached), and SOL rooflines.

Entry point: ``servopt.perf_db.database.open_database(system, backend, version, cache_dir, sol)``
-> ``PerfDatabase`` with one batched query method per op family. Modules: ``locate`` (the peer's data
tree and queryable versions), ``sources`` (per-table source files, ``load_table``), ``tables``
(parquet -> columns), ``lanes`` (attention kernel lanes), ``grids``/``families`` (grid arrays),
``build``/``cache`` (build once, reuse), ``sol`` (rooflines), ``quant`` (quantization modes),
``gemm`` (GEMM and fp8 scale tables), ``systems`` (GPU specs).
"""
