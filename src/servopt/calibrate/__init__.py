"""Measured serving results and their mapping to servopt setups: the data side of calibration.

``records`` (MeasuredRecord), ``public_csv`` (read/write measurement files), ``setups`` (record ->
what servopt can evaluate, or why not), ``predictors`` (the registry the validation compares).
"""
