"""The nightly batch run's Lambda steps (plan, finish, fail): ``handler.step``."""
