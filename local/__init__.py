"""What runs on a user's machine, not in AWS: checks before a deploy."""
