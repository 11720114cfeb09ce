"""NCF retraining pipeline stages: plain Python, no Airflow import (see ../shared/DESIGN.md).

The module map — what each module holds, who uses it, and the layers the imports follow — is the README's
"Architecture: the module map" (the one map); pyproject.toml's import-linter contracts check it.
"""
