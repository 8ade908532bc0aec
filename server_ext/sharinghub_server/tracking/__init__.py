"""MLflow glue: the embedded tracking server (and, later, external mode and the registry →
catalog links). ``mlflow`` is imported only when first needed."""
