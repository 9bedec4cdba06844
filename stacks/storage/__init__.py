"""The stateful stack: the key and the buckets that outlive redeploys."""
