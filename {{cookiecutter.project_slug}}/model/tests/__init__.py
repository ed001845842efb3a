"""The model suite: data quality, model quality, bias, training contract, serving contract and HTTP tests."""
