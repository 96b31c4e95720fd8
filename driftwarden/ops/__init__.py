"""Operations tools run beside the workers in production: the alert relay and the Redis ACL."""
