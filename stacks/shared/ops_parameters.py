"""CloudFormation parameters for the knobs an ops team turns without touching code.

Each parameter's default comes from configuration; its label and group go into the template's
``AWS::CloudFormation::Interface`` metadata so the console's form reads as a form, not a list.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnParameter, Stack


class OpsParameters:
    """Registers parameters on one stack and keeps that stack's console interface in step."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._groups: dict[str, list[str]] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def add(self, logical_id: str, *, group: str, label: str, description: str, **props: Any) -> CfnParameter:
        parameter = CfnParameter(self._stack, logical_id, description=description, **props)
        self._groups.setdefault(group, []).append(logical_id)
        self._labels[logical_id] = {"default": label}
        self._stack.template_options.metadata = {
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": [
                    {"Label": {"default": name}, "Parameters": list(ids)} for name, ids in self._groups.items()
                ],
                "ParameterLabels": dict(self._labels),
            }
        }
        return parameter
