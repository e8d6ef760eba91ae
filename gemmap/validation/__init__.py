"""Validation against measured Gemmini runs (``gemmap validate``) and calibration (``gemmap calibrate``).

``data`` reads the measured runs, ``predict`` (the model's prediction of one run) is applied by
``data.validate_runs``, ``stats`` computes the error statistics, ``report`` writes the outputs and
``calibrate`` fits named physical arch parameters with held-out error.
"""
