"""Each Lambda function of the templates, run in this process as Lambda runs it.

A call sets ``os.environ`` to what Lambda gives the function: the template's ``Environment``
variables, Lambda's reserved variables (``AWS_REGION``, ``AWS_LAMBDA_FUNCTION_NAME``, memory,
version; Lambda Developer Guide, "Defined runtime environment variables",
https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime)
and fake credentials for moto; variables another function's template sets are removed, so a
variable missing from this function's template is missing here too. Every settings cache
(``lambdas.shared.consumer.clear_settings``) is cleared (the boto3 clients of ``lambdas.shared.aws``
are kept: every function has the same region and credentials here, and making clients is most of a
small call's time; the cloud clears them when it starts and stops), the handler is
imported by the template's ``Handler`` path and called with the event and a context object carrying
the template's function name, memory and timeout. One call at a time (a process-wide lock,
``ENVIRONMENT_LOCK``): the environment is the process's.

What Lambda enforces and this does not: memory (reported, not limited) and the timeout (the
context's remaining time counts down from it; a call that overruns is flagged in the log, not killed).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local.rehearse.templates import ACCOUNT, REGION

# The handlers' own modules; anything else (CDK's Node.js providers, index.handler of the
# BucketDeployment) is not the app's code and is not run (the cloud stands in for what it does).
APP_PACKAGE = "lambdas."
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
# Held while os.environ is a function's (each call swaps the whole process environment) and by
# whatever else reads the environment while a call may be running: Step Functions' task requests and
# the SageMaker stand-ins on moto's execution threads (local/rehearse/cloud.py, sagemaker.py). A
# reader between the swap's clear and update saw a half-empty environment (a KeyError for
# AWS_SESSION_TOKEN failed a rehearsed retraining run's Train step).
ENVIRONMENT_LOCK = threading.RLock()


def holding_environment(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, called while holding ``ENVIRONMENT_LOCK``."""

    def held(*args: Any, **kwargs: Any) -> Any:
        with ENVIRONMENT_LOCK:
            return method(*args, **kwargs)

    return held


@dataclass
class Function:
    """One ``AWS::Lambda::Function`` of a template, its properties resolved."""

    stack: str
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    environment: dict[str, str]
    timeout: int = 3  # Lambda's defaults (AWS::Lambda::Function Timeout 3 s, MemorySize 128 MB)
    memory: int = 128
    reserved_concurrency: int | None = None
    invocations: int = field(default=0, compare=False)

    @property
    def runnable(self) -> bool:
        return self.runtime.startswith("python") and self.handler.startswith(APP_PACKAGE)


class FunctionError(Exception):
    """The handler raised: ``error_type`` and ``message`` as Lambda reports them (errorType, errorMessage)."""

    def __init__(self, function: Function, error: BaseException) -> None:
        self.function = function
        self.error_type = type(error).__name__
        self.message = str(error)
        self.trace = traceback.format_exception(error)
        super().__init__(f"{function.name} ({function.handler}): {self.error_type}: {self.message}")

    def payload(self) -> dict[str, Any]:
        return {"errorMessage": self.message, "errorType": self.error_type, "stackTrace": self.trace[-5:]}


class Context:
    """The Lambda context object (Python runtime): https://docs.aws.amazon.com/lambda/latest/dg/python-context.html"""

    def __init__(self, function: Function) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"rehearsal/{self.aws_request_id}"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _ThreadStream:
    """A stream that writes to this thread's buffer while a handler runs in it, else to ``default``:
    a handler run in a Step Functions execution's thread must not swallow what the main thread prints
    meanwhile (``contextlib.redirect_stdout`` would: ``sys.stdout`` is the process's)."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.local = threading.local()

    def write(self, text: str) -> int:
        return (getattr(self.local, "buffer", None) or self.default).write(text)

    def flush(self) -> None:
        (getattr(self.local, "buffer", None) or self.default).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.default, name)


@contextlib.contextmanager
def _captured(consumer: Any, buffer: io.StringIO) -> Iterator[None]:
    """What the handler prints (Powertools' metrics) and logs (its logger) goes to ``buffer``; and the
    one Powertools logger and metrics of ``lambdas.shared.consumer`` get this function's service and
    namespace (in Lambda each function's process reads them when the module loads; here the first
    function to import it would name them all)."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
    consumer.metrics.provider.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    consumer.metrics.provider.service = service
    consumer.logger.append_keys(service=service)
    if not isinstance(sys.stdout, _ThreadStream):
        sys.stdout = _ThreadStream(sys.stdout)
    handler = consumer.logger.logger_handler
    if hasattr(handler, "setStream") and not isinstance(handler.stream, _ThreadStream):
        handler.setStream(_ThreadStream(handler.stream))
    streams = [sys.stdout] + ([handler.stream] if isinstance(getattr(handler, "stream", None), _ThreadStream) else [])
    for stream in streams:
        stream.local.buffer = buffer
    try:
        yield
    finally:
        for stream in streams:
            stream.local.buffer = None


class Runner:
    """Runs the functions of one app: ``declared`` is every variable name any of its templates sets."""

    def __init__(self, declared: set[str]) -> None:
        self.declared = declared

    @contextlib.contextmanager
    def environment(self, function: Function) -> Iterator[None]:
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update({k: v for k, v in saved.items() if k not in self.declared})
            os.environ.update(FAKE_CREDENTIALS)
            os.environ.update({
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_LAMBDA_FUNCTION_NAME": function.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            })  # fmt: skip
            os.environ.update(function.environment)
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def run(self, function: Function, event: Any) -> tuple[Any, dict[str, Any]]:
        """The handler's result and what the call looked like (duration, printed output, overrun).

        Raises ``FunctionError`` when the handler raises, as Lambda reports an unhandled error."""
        if not function.runnable:
            raise FunctionError(function, NotImplementedError(f"{function.runtime} handler {function.handler} is not the app's code: not run here"))
        module_name, _, attribute = function.handler.rpartition(".")
        with ENVIRONMENT_LOCK, self.environment(function):
            # Imported inside the function's environment: Powertools reads it when the module loads.
            from lambdas.shared import consumer

            consumer.clear_settings()
            handler = getattr(importlib.import_module(module_name), attribute)
            context = Context(function)
            printed = io.StringIO()
            started = time.monotonic()
            function.invocations += 1
            try:
                with _captured(consumer, printed):
                    result = handler(event, context)
            except Exception as error:  # Lambda reports any exception as the invocation's error
                raise FunctionError(function, error) from error
            finally:
                consumer.clear_settings()
            seconds = time.monotonic() - started
        return result, {"seconds": round(seconds, 3), "overran": seconds > function.timeout, "printed": printed.getvalue()[-2000:]}
