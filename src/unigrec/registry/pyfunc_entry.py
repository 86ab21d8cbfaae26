"""MLflow "model from code" entry point: run by MLflow when a registered unigrec model is loaded."""

from mlflow.models import set_model

from unigrec.registry.pyfunc_model import RegisteredRecommender

set_model(RegisteredRecommender())
