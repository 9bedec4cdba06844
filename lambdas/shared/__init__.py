"""Code the review Lambdas share: AWS clients and parking a message with its reason."""
