"""NCF retraining pipeline stages: plain Python, no Airflow import (see DESIGN.md)."""
