"""The performance database: system specs, measured grids (from aiconfigurator-core's parquet
tables, converted to servopt's own array format and cached), and SOL rooflines."""
