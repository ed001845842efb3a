"""Release scripts: register, approve, deploy, promote, roll back and inspect the SageMaker endpoint."""
