"""The app synthesised in this process, read back as CloudFormation would read it.

``synthesise(env, workdir)`` builds the app exactly as ``cdk synth -c env=ENV`` does (the composition
root ``app.build``, with cdk.json's context) into ``workdir`` and returns each stack's template in
deployment order (the cloud assembly's ``dependencies``). ``Resolver`` evaluates a template's intrinsic
functions the way CloudFormation does at deploy time, against what is already deployed.

Intrinsic functions and pseudo parameters: CloudFormation User Guide, "Intrinsic function
reference" (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html)
and "Pseudo parameters reference" (.../pseudo-parameter-reference.html). The app's cross-stack
references are ``Fn::GetStackOutput`` ({StackName, OutputName, Region}: "returns the value of an
output from another stack", resolved at create time; CloudFormation Template Reference,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getstackoutput.html).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# The rehearsal's account and region (any fixed values do: nothing leaves this process).
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": URL_SUFFIX,
    "AWS::NotificationARNs": [],
}


class TemplateError(Exception):
    """A template the rehearsal cannot read as CloudFormation would: the message names where."""


@dataclass
class Asset:
    """A file asset of the cloud assembly: ``path`` in the assembly, zipped (``zip``) or as it is (``file``)."""

    object_key: str
    path: Path
    packaging: str


@dataclass
class StackTemplate:
    id: str  # the construct ID: Storage, Serving, ...
    name: str  # the deployed stack name: mlloop-dev-storage
    template: dict[str, Any]
    assets: dict[str, Asset] = field(default_factory=dict)  # by object key in the assets bucket

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: resource for name, resource in self.resources.items() if resource["Type"] == kind}


def synthesise(env: str, workdir: Path) -> list[StackTemplate]:
    """The app for ``env`` as ``cdk synth -c env=ENV`` builds it (cdk-nag packs included), in ``workdir``."""
    from aws_cdk import App  # imported here: jsii starts a Node process

    import app as composition_root

    context = copy.deepcopy(json.loads((ROOT / "cdk.json").read_text())["context"])
    context["env"] = env
    workdir.mkdir(parents=True, exist_ok=True)
    # As `cdk synth` (app.py): the three cdk-nag packs run, CloudFormation's built-in validation does not.
    app = App(context=context, outdir=str(workdir), builtin_cloud_formation_validation=False)
    composition_root.build(app)
    app.synth()
    return read_assembly(workdir)


def read_assembly(directory: Path) -> list[StackTemplate]:
    """Every stack of a cloud assembly (``cdk.out``), dependencies first."""
    manifest = json.loads((directory / "manifest.json").read_text())
    artifacts = manifest["artifacts"]
    stacks = {name: a for name, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in ordered:
            return
        if name in path:
            raise TemplateError(f"cloud assembly: stacks depend on each other in a cycle: {' -> '.join(path + (name,))}")
        for dependency in stacks[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency, path + (name,))
        ordered.append(name)

    for name in stacks:
        visit(name)
    result = []
    for name in ordered:
        properties = stacks[name]["properties"]
        template = json.loads((directory / properties["templateFile"]).read_text())
        assets: dict[str, Asset] = {}
        for dependency in stacks[name].get("dependencies", []):
            if artifacts.get(dependency, {}).get("type") == "cdk:asset-manifest":
                file = json.loads((directory / artifacts[dependency]["properties"]["file"]).read_text())
                for entry in file.get("files", {}).values():
                    for destination in entry["destinations"].values():
                        assets[destination["objectKey"]] = Asset(destination["objectKey"], directory / entry["source"]["path"], entry["source"].get("packaging", "file"))
        result.append(StackTemplate(name, properties.get("stackName", name), template, assets))
    return result


class Unresolved(TemplateError):
    """A reference to something not (yet) deployed."""


_SUB = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """One stack's intrinsic functions, resolved.

    ``ref(logical_id)`` and ``attribute(logical_id, name)`` answer for the stack's deployed resources;
    ``output(stack_name, output_name)`` for other stacks' outputs (``Fn::GetStackOutput``) and
    ``export(name)`` for ``Fn::ImportValue``. ``parameters`` holds the stack's parameter values (already
    resolved: SSM parameter types read from SSM by the caller).
    """

    def __init__(
        self,
        stack: StackTemplate,
        parameters: dict[str, Any],
        *,
        ref: Callable[[str], Any],
        attribute: Callable[[str, str], Any],
        output: Callable[[str, str], Any],
        export: Callable[[str], Any],
    ) -> None:
        self.stack = stack
        self.parameters = parameters
        self._ref, self._attribute, self._output, self._export = ref, attribute, output, export
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.stack.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"{self.stack.id}: condition {name} is not declared")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def included(self, resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or self.condition(resource["Condition"])

    def references(self, value: Any) -> set[str]:
        """The logical IDs of this stack's resources that ``value`` refers to (Ref, GetAtt, Sub)."""
        found: set[str] = set()
        resources = self.stack.resources

        def walk(item: Any) -> None:
            if isinstance(item, dict):
                if "Ref" in item and item["Ref"] in resources:
                    found.add(item["Ref"])
                if "Fn::GetAtt" in item:
                    target = item["Fn::GetAtt"]
                    name = target[0] if isinstance(target, list) else target.split(".")[0]
                    if name in resources:
                        found.add(name)
                if "Fn::Sub" in item:
                    text = item["Fn::Sub"][0] if isinstance(item["Fn::Sub"], list) else item["Fn::Sub"]
                    for variable in _SUB.findall(text):
                        if variable.split(".")[0] in resources:
                            found.add(variable.split(".")[0])
                for value in item.values():
                    walk(value)
            elif isinstance(item, list):
                for value in item:
                    walk(value)

        walk(value)
        return found

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        # AWS::NoValue (directly or from Fn::If) removes the property or list item it stands for.
        if isinstance(value, list):
            return [item for item in (self._resolve(item) for item in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if _is_no_value(value):
            return _NO_VALUE
        if len(value) == 1:
            [(name, argument)] = value.items()
            function = _FUNCTIONS.get(name)
            if function is not None:
                return function(self, argument)
        return {key: item for key, item in ((key, self._resolve(item)) for key, item in value.items()) if item is not _NO_VALUE}

    # -- functions ---------------------------------------------------------------------------------
    def _ref_value(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::StackName":
            return self.stack.name
        if name == "AWS::StackId":
            return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack.name}/rehearsal"
        if name in self.parameters:
            return self.parameters[name]
        if name in self.stack.resources:
            return self._ref(name)
        raise TemplateError(f"{self.stack.id}: Ref {name}: neither a parameter, a pseudo parameter nor a resource of the stack")

    def _get_att(self, argument: Any) -> Any:
        name, attribute = (argument if isinstance(argument, list) else argument.split(".", 1))
        return self._attribute(name, self.resolve(attribute))

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return self.resolve(delimiter).join(str(item) for item in self.resolve(items))

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        values = {key: self.resolve(item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable.startswith("!"):
                return "${" + variable[1:] + "}"
            if variable in values:
                return str(values[variable])
            if "." in variable and variable.split(".")[0] in self.stack.resources:
                return str(self._attribute(*variable.split(".", 1)))
            return str(self._ref_value(variable))

        return _SUB.sub(replace, text)

    def _select(self, argument: list[Any]) -> Any:
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        return items[int(index)]

    def _split(self, argument: list[Any]) -> list[str]:
        return str(self.resolve(argument[1])).split(self.resolve(argument[0]))

    def _find_in_map(self, argument: list[Any]) -> Any:
        name, top, second = (self.resolve(item) for item in argument[:3])
        try:
            return self.stack.template["Mappings"][name][top][second]
        except KeyError:
            raise TemplateError(f"{self.stack.id}: Fn::FindInMap {name}/{top}/{second}: not in the template's Mappings") from None

    def _if(self, argument: list[Any]) -> Any:
        name, yes, no = argument
        return self._resolve(yes if self.condition(name) else no)

    def _stack_output(self, argument: dict[str, Any]) -> Any:
        return self._output(self.resolve(argument["StackName"]), self.resolve(argument["OutputName"]))

    def _to_json_string(self, argument: Any) -> str:
        return json.dumps(self.resolve(argument), separators=(",", ":"))


_NO_VALUE = object()


def _is_no_value(item: Any) -> bool:
    return isinstance(item, dict) and item.get("Ref") == "AWS::NoValue"


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r._ref_value(a),
    "Fn::GetAtt": Resolver._get_att,
    "Fn::Join": Resolver._join,
    "Fn::Sub": Resolver._sub,
    "Fn::Select": Resolver._select,
    "Fn::Split": Resolver._split,
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::If": Resolver._if,
    "Fn::Equals": lambda r, a: r.resolve(a[0]) == r.resolve(a[1]),
    "Fn::Not": lambda r, a: not r.resolve(a[0]),
    "Fn::And": lambda r, a: all(r.resolve(item) for item in a),
    "Fn::Or": lambda r, a: any(r.resolve(item) for item in a),
    "Condition": lambda r, a: r.condition(a),
    "Fn::ImportValue": lambda r, a: r._export(r.resolve(a)),
    "Fn::GetStackOutput": Resolver._stack_output,
    "Fn::Base64": lambda r, a: __import__("base64").b64encode(str(r.resolve(a)).encode()).decode(),
    "Fn::GetAZs": lambda r, a: [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
    "Fn::ToJsonString": Resolver._to_json_string,
}


def parameter_defaults(stack: StackTemplate, read_ssm: Callable[[str], str]) -> tuple[dict[str, Any], list[str]]:
    """The stack's parameters as a deploy without overrides gives them, and the names of those with no
    default (given a placeholder: ``rehearsal-<name>``, or 0 for a number). Each default as
    CloudFormation passes it to Ref: SSM parameter types (``AWS::SSM::Parameter::Value<String>``) read
    from SSM, lists split on commas, anything else a string."""
    values: dict[str, Any] = {}
    placeholders: list[str] = []
    for name, declaration in stack.template.get("Parameters", {}).items():
        kind = declaration.get("Type", "String")
        if "Default" not in declaration:
            placeholders.append(name)
            values[name] = "0" if kind == "Number" else f"rehearsal-{name}"
            continue
        default = declaration["Default"]
        if kind.startswith("AWS::SSM::Parameter::Value<"):
            values[name] = read_ssm(default)
        elif kind.startswith("List<") or kind == "CommaDelimitedList":
            values[name] = str(default).split(",")
        else:
            values[name] = str(default)
    return values, placeholders


def resource_order(stack: StackTemplate, resolver: Resolver) -> list[str]:
    """The stack's logical IDs in an order CloudFormation could create them: each after what it
    refers to and what it ``DependsOn``."""
    resources = stack.resources
    ordered: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise TemplateError(f"{stack.id}: resources refer to each other in a cycle through {name}")
        state[name] = 1
        resource = resources[name]
        depends = resource.get("DependsOn", [])
        for dependency in sorted(resolver.references(resource.get("Properties", {})) | set([depends] if isinstance(depends, str) else depends)):
            if dependency != name:
                visit(dependency)
        state[name] = 2
        ordered.append(name)

    for name in resources:
        visit(name)
    return ordered
