"""Code the Lambdas share: the SQS consumer, AWS clients and parking a message with its reason, the review-group message, the baseline dataset."""
