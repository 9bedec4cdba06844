"""CloudFormation custom resource that runs a baselining processing job and waits for its result."""
