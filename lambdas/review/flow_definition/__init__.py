"""CloudFormation custom resource for an A2I flow definition (CloudFormation has no resource type)."""
