"""Tests of the SageMaker Pipeline definition and its role (AWS environment, moto)."""
