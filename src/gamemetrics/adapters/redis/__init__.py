"""Redis adapters of the Cache port: values and rate limits shared by every process on one server."""
